"""Feedback records and the channel that delays, privatises and delivers them.

Every reaction of a simulated user is one record of :data:`FEEDBACK_DTYPE` (a numpy structured array
row). The :class:`FeedbackChannel` gives each record an arrival step drawn from its signal's delay
distribution, optionally privatises its value (local differential privacy) and hands it out when due.

Conservation: every record submitted is delivered exactly once. A record is delivered to the session it
came from; if that session has ended, to the same user's session running elsewhere in a batch; if the user
is away, it is held and delivered when the user's next session starts (:meth:`FeedbackChannel.release`).
Until then it is counted in :attr:`FeedbackChannel.pending`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from envs.draws import geometric, geometric_log_odds, laplace
from envs.signals import IS_BINARY, NUM_SIGNALS, VALUE_HIGH, VALUE_LOW, Signal

FEEDBACK_DTYPE = np.dtype(
    [
        ("impression_id", np.int64),  # unique per shown slate
        ("user_id", np.int32),
        ("env_index", np.int32),  # sub-environment the record is delivered to
        ("session_id", np.int64),  # session the impression was shown in
        ("item_index", np.int32),  # catalog index of the item
        ("position", np.int16),  # slot in the slate, 0 = top
        ("kind", np.int16),  # a :class:`~envs.signals.Signal`
        ("value", np.float32),  # in the signal's range (ratings 1..5, fractions 0..1, seconds, money)
        ("step_shown", np.int64),  # environment step at which the slate was shown
        ("step_arrived", np.int64),  # environment step at which the record was delivered
        ("text_id", np.int16),  # review/comment text (see :func:`opinion_text`), -1 for none
    ]
)
EMPTY_FEEDBACK = np.empty(0, dtype=FEEDBACK_DTYPE)

OPINIONS = (
    (
        "Terrible, a complete waste of time.",
        "Really disappointed, would not recommend.",
        "Awful. Nothing about it worked for me.",
        "Poor quality and boring.",
    ),
    (
        "Not great, it fell short.",
        "Below expectations, rather weak.",
        "Meh. I expected a lot more.",
        "Some effort, but mostly dull.",
    ),
    (
        "Okay, nothing special.",
        "Average; some good parts, some dull ones.",
        "Fine, but forgettable.",
        "Decent enough, not memorable.",
    ),
    (
        "Good, I enjoyed it.",
        "Solid and worth the time.",
        "Nice one, would recommend.",
        "Pleasant surprise, quite good.",
    ),
    (
        "Excellent, loved every bit!",
        "Fantastic, one of the best.",
        "Brilliant, highly recommended!",
        "Absolutely wonderful, a must.",
    ),
)
PHRASINGS = len(OPINIONS[0])


def opinion_text(text_id: int) -> str | None:
    """The review/comment text of a record's ``text_id``; its tone matches ``text_id // PHRASINGS + 1`` stars."""
    if text_id < 0:
        return None
    return OPINIONS[text_id // PHRASINGS][text_id % PHRASINGS]


class FeedbackEvent(NamedTuple):
    """One feedback record as a readable Python object (see :func:`as_events`)."""

    impression_id: int
    user_id: int
    item_index: int
    position: int
    kind: Signal
    value: float
    step_shown: int
    step_arrived: int
    text: str | None


FeedbackColumns = dict[str, np.ndarray]
"""Feedback as environments put it in ``info["feedback"]``: one equal-length array per field of
:data:`FEEDBACK_DTYPE` (a plain dict, so Gymnasium's checkers and vector-info tools handle it)."""


def as_columns(records: np.ndarray) -> FeedbackColumns:
    """Field name → column view of a :data:`FEEDBACK_DTYPE` array (no copy)."""
    return {name: records[name] for name in FEEDBACK_DTYPE.names}


def as_records(feedback: FeedbackColumns | np.ndarray) -> np.ndarray:
    """The :data:`FEEDBACK_DTYPE` array behind ``info["feedback"]`` columns (no copy when the columns
    are the environment's own views). Raises ``ValueError`` on missing fields or unequal lengths."""
    if isinstance(feedback, np.ndarray):
        return feedback
    missing = [name for name in FEEDBACK_DTYPE.names if name not in feedback]
    if missing:
        raise ValueError(f"feedback columns lack {missing}; expected every field of FEEDBACK_DTYPE")
    base = feedback["kind"].base
    if (
        isinstance(base, np.ndarray)
        and base.dtype == FEEDBACK_DTYPE
        and all(_is_column(feedback[n], base, n) for n in FEEDBACK_DTYPE.names)
    ):
        return base
    lengths = {len(feedback[name]) for name in FEEDBACK_DTYPE.names}
    if len(lengths) != 1:
        raise ValueError(f"feedback columns have lengths {sorted(lengths)}; expected one length")
    records = np.empty(lengths.pop(), FEEDBACK_DTYPE)
    for name in FEEDBACK_DTYPE.names:
        records[name] = feedback[name]
    return records


def _is_column(column: np.ndarray, base: np.ndarray, name: str) -> bool:
    """Whether ``column`` is exactly ``base[name]`` (same memory, length and stride), not a slice of it."""
    own = base[name]
    return column.shape == own.shape and column.strides == own.strides and column.ctypes.data == own.ctypes.data


def as_events(feedback: FeedbackColumns | np.ndarray) -> list[FeedbackEvent]:
    """Turn ``info["feedback"]`` (columns) or a record array into :class:`FeedbackEvent` objects."""
    records = as_records(feedback)
    return [
        FeedbackEvent(
            int(r["impression_id"]),
            int(r["user_id"]),
            int(r["item_index"]),
            int(r["position"]),
            Signal(int(r["kind"])),
            float(r["value"]),
            int(r["step_shown"]),
            int(r["step_arrived"]),
            opinion_text(int(r["text_id"])),
        )
        for r in records
    ]


@dataclass(frozen=True)
class DelayTable:
    """Per-signal delay distributions, in environment steps.

    ``mean[k] == 0`` means no delay. ``geometric[k]`` selects a geometric distribution on {0, 1, 2, ...}
    with mean ``mean[k]`` truncated at ``max_steps``; otherwise the delay is the fixed ``round(mean[k])``.

    Attributes:
        mean: ``(num_signals,)`` float64, steps.
        geometric: ``(num_signals,)`` bool.
        max_steps: the largest delay any record can get.
    """

    mean: np.ndarray
    geometric: np.ndarray
    max_steps: int

    @classmethod
    def parse(cls, delays: Mapping[str, object] | None, scale: float = 1.0, max_steps: int = 200) -> DelayTable:
        """Build from ``{"rating": "geometric:5", "dwell_seconds": 1, "click": "none"}``.

        A value is a number of steps (fixed delay), ``"none"``, ``"fixed:N"`` or ``"geometric:MEAN"``.
        ``scale`` multiplies every mean (0 turns all delays off).
        """
        mean = np.zeros(NUM_SIGNALS)
        geometric = np.zeros(NUM_SIGNALS, dtype=bool)
        for name, spec in (delays or {}).items():
            kind = Signal.parse(name)
            mean[kind], geometric[kind] = _parse_delay(name, spec)
        mean *= scale
        if (mean > max_steps).any():
            worst = Signal(int(np.argmax(mean))).name.lower()
            raise ValueError(f"delay of {worst!r} has mean {mean.max():g} steps, above max_delay={max_steps}")
        return cls(mean=mean, geometric=geometric, max_steps=int(max_steps))


def _parse_delay(name: str, spec: object) -> tuple[float, bool]:
    expected = "a number of steps >= 0, 'none', 'fixed:N' or 'geometric:MEAN'"
    if isinstance(spec, str):
        dist, _, number = spec.partition(":")
        if dist == "none" and not number:
            return 0.0, False
        if dist in ("fixed", "geometric") and number:
            try:
                steps = float(number)
            except ValueError:
                steps = -1.0
            if math.isfinite(steps) and steps >= 0:
                return steps, dist == "geometric"
        raise ValueError(f"delay for {name!r} is {spec!r}; expected {expected}")
    if isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
        if np.isfinite(spec) and spec >= 0:
            return float(spec), False
    raise ValueError(f"delay for {name!r} is {spec!r}; expected {expected}")


UNIFORMS_PER_RECORD = 2
NO_UNIFORMS = np.empty(0, np.float32)  # what a step without new records draws (the same as drawing none)
HELD = -1  # env_index of a record waiting for its user's next session
FREE = -2  # env_index of an unused slot of the held store


class FeedbackChannel:
    """Delays, privatises and delivers feedback records for a batch of sub-environments.

    Scheduled records live in one pool (a :data:`FEEDBACK_DTYPE` array) whose ``step_arrived`` holds the
    scheduled arrival until delivery; each step is one compiled pass over the pool. Records held for an
    absent user live in a separate store of slots chained per user, so a user's return costs only their
    own records.

    Args:
        delays: per-signal delay distributions.
        privacy_epsilon: ε of local differential privacy, or None for no privatisation.
    """

    def __init__(self, delays: DelayTable, privacy_epsilon: float | None = None) -> None:
        self.delays = delays
        self.privacy_epsilon = privacy_epsilon
        epsilon = 0.0 if privacy_epsilon is None else float(privacy_epsilon)
        log_odds = np.array(
            [geometric_log_odds(m) if g and m > 0 else 0.0 for m, g in zip(delays.mean, delays.geometric, strict=True)]
        )
        self._params = (delays.mean, log_odds, delays.max_steps, epsilon, IS_BINARY, VALUE_LOW, VALUE_HIGH)
        self.clear()

    def clear(self) -> None:
        """Forget every pending record and zero the counters."""
        self._pool, self._count = np.empty(1024, FEEDBACK_DTYPE), 0  # scheduled, scanned every step
        self._held = HeldStore.empty(1024, 0)  # waiting for absent users
        self.generated = np.zeros(NUM_SIGNALS, dtype=np.int64)
        self.delivered = np.zeros(NUM_SIGNALS, dtype=np.int64)

    @property
    def pending(self) -> int:
        """Records submitted and not yet delivered."""
        return self._count + self._held.count

    def pending_records(self) -> np.ndarray:
        """A copy of the pending records (``step_arrived`` is their scheduled arrival; ``env_index`` -1
        marks records held for an absent user)."""
        return np.concatenate([self._pool[: self._count], self._held.records()])

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume: pending records and counters (plain arrays, no pickle)."""
        return {
            "pending": self.pending_records(),
            "generated": self.generated.copy(),
            "delivered": self.delivered.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""
        pending = np.asarray(state["pending"])
        if pending.dtype != FEEDBACK_DTYPE:
            raise ValueError(f"pending feedback has dtype {pending.dtype}; expected FEEDBACK_DTYPE")
        held = pending["env_index"] == HELD
        self._pool, self._count = _pool_of(pending[~held])
        self._held = HeldStore.of(pending[held])
        self.generated = np.array(state["generated"], np.int64)
        self.delivered = np.array(state["delivered"], np.int64)

    def advance(
        self,
        records: np.ndarray,
        now: int,
        rng: np.random.Generator,
        session_of_env: np.ndarray,
        env_of_user: np.ndarray,
    ) -> np.ndarray:
        """Schedule fresh ``records`` shown at step ``now`` and return every record due by ``now``, each
        with ``env_index`` set to where it is delivered.

        Args:
            records: new :data:`FEEDBACK_DTYPE` records; those with delay 0 are due at once.
            session_of_env: ``(num_envs,)`` the session each sub-environment is running (-1: none).
            env_of_user: ``(num_users,)`` the sub-environment each user is active in, or -1.

        A due record whose session has ended goes to its user's session elsewhere in the batch, or is
        held for the user's next session.
        """
        n = len(records)
        self._pool = _with_room(self._pool, self._count, n)
        self._held = self._held.with_room(self._count + n, len(env_of_user))
        self._count, arrived = _advance(
            self._pool,
            self._count,
            self._held.arrays,
            records,
            now,
            rng.random(UNIFORMS_PER_RECORD * n, dtype=np.float32) if n else NO_UNIFORMS,
            self._params,
            session_of_env,
            env_of_user,
            self.generated,
            self.delivered,
        )
        return arrived

    def release(self, users: np.ndarray, env_of_user: np.ndarray, now: int) -> np.ndarray:
        """The held records of ``users`` ``(n,)`` (now active), delivered to their sub-environments at ``now``."""
        self._held = self._held.with_room(0, len(env_of_user))
        return _release(self._held.arrays, users, env_of_user, now, self.delivered)


class HeldStore:
    """Records held for absent users: slots of a :data:`FEEDBACK_DTYPE` array chained per user (oldest
    first), with a stack of free slots. ``arrays`` is what the compiled functions work on:
    (records, next slot of each slot, first and last slot of each user, free slots, [free count])."""

    def __init__(self, arrays: tuple[np.ndarray, ...]) -> None:
        self.arrays = arrays

    @classmethod
    def empty(cls, capacity: int, num_users: int) -> HeldStore:
        records = np.empty(capacity, FEEDBACK_DTYPE)
        records["env_index"] = FREE
        chains = np.full(capacity, -1, np.int64)
        first, last = np.full(num_users, -1, np.int64), np.full(num_users, -1, np.int64)
        free = np.arange(capacity - 1, -1, -1, dtype=np.int64)  # slot 0 is taken first
        return cls((records, chains, first, last, free, np.array([capacity], np.int64)))

    @classmethod
    def of(cls, records: np.ndarray, num_users: int = 0, capacity: int = 1024) -> HeldStore:
        """A store holding ``records`` (each user's in the given order)."""
        users = max(num_users, int(records["user_id"].max()) + 1 if len(records) else 0)
        store = cls.empty(max(capacity, 2 * len(records)), users)
        _hold_all(store.arrays, records)
        return store

    @property
    def count(self) -> int:
        return len(self.arrays[0]) - int(self.arrays[5][0])

    def records(self) -> np.ndarray:
        """A copy of the held records, user by user, each user's in the order they will be delivered."""
        records, chains, first = self.arrays[:3]
        return _chained(records, chains, first, self.count)

    def with_room(self, extra: int, num_users: int) -> HeldStore:
        """This store, or a larger one holding the same chains, with at least ``extra`` free slots and
        chains for ``num_users``."""
        records, _, first, _, _, free_count = self.arrays
        if free_count[0] >= extra and len(first) >= num_users:
            return self
        capacity = len(records) if free_count[0] >= extra else max(2 * len(records), self.count + extra)
        return HeldStore.of(self.records(), max(num_users, len(first)), capacity)


def _with_room(pool: np.ndarray, count: int, extra: int) -> np.ndarray:
    """``pool`` (its first ``count`` records kept) with room for ``extra`` more, doubling when it grows."""
    if count + extra <= len(pool):
        return pool
    grown = np.empty(max(2 * len(pool), count + extra), FEEDBACK_DTYPE)
    grown[:count] = pool[:count]
    return grown


def _pool_of(records: np.ndarray) -> tuple[np.ndarray, int]:
    pool = np.empty(max(1024, 2 * len(records)), FEEDBACK_DTYPE)
    pool[: len(records)] = records
    return pool, len(records)


@njit(cache=True)
def _advance(pool, count, held, records, now, u, params, session_of_env, env_of_user, generated, delivered):
    """Schedule ``records`` into ``pool``, then deliver what is due by ``now``; those whose user is away
    go to the ``held`` store. Returns the new pool count and the delivered records (a new array)."""
    count = _schedule(pool, count, records, now, u, params, generated)
    due = 0
    i = 0
    while i < count:
        if pool[i]["step_arrived"] <= now:
            env = pool[i]["env_index"]
            if session_of_env[env] != pool[i]["session_id"]:
                env = env_of_user[pool[i]["user_id"]]
                if env < 0:
                    _hold(held, pool[i])
                    count -= 1
                    pool[i] = pool[count]
                    continue
                pool[i]["env_index"] = env
            due += 1
        i += 1
    out = np.empty(due, pool.dtype)
    n = 0
    i = 0
    while n < due:
        if pool[i]["step_arrived"] <= now:
            count, n = _deliver(pool, i, count, pool[i]["env_index"], now, out, n, delivered)
        else:
            i += 1
    return count, out


@njit(cache=True)
def _schedule(pool, count, records, now, u, params, generated):
    """Append ``records`` to ``pool`` with their arrival steps (and privatised values); returns the count."""
    mean, log_odds, max_delay, epsilon, binary, low, high = params
    keep = math.exp(epsilon) / (1.0 + math.exp(epsilon)) if epsilon > 0 else 1.0
    i = 0
    for r in range(records.shape[0]):
        kind = records[r]["kind"]
        generated[kind] += 1
        delay = round(mean[kind])
        if log_odds[kind] < 0:  # geometric with mean > 0
            delay, i = geometric(log_odds[kind], u, i)
            delay = min(delay, max_delay)
        else:
            i += 1
        pool[count] = records[r]
        pool[count]["step_arrived"] = now + delay
        if epsilon > 0:
            pool[count]["value"], i = _privatise(pool[count]["value"], kind, keep, epsilon, binary, low, high, u, i)
        else:
            i += 1
        count += 1
    return count


@njit(cache=True)
def _privatise(value, kind, keep, epsilon, binary, low, high, u, i):
    """Randomised response for binary signals, clipped Laplace noise (range / ε) for numeric ones."""
    if binary[kind]:
        flip = u[i] >= keep
        return (1.0 - value) if flip else value, i + 1
    noise, i = laplace((high[kind] - low[kind]) / epsilon, u, i)
    noisy = min(max(value + noise, low[kind]), high[kind])
    if kind == 12:  # Signal.RATING: whole stars
        noisy = round(noisy)
    return noisy, i


@njit(cache=True)
def _deliver(pool, i, count, env, now, out, n, delivered):
    """Move pool record ``i`` to ``out[n]``, delivered to ``env`` at ``now``; the last pending record
    takes its place. Returns the new pool count and out count."""
    out[n] = pool[i]
    out[n]["env_index"] = env
    out[n]["step_arrived"] = now
    delivered[pool[i]["kind"]] += 1
    pool[i] = pool[count - 1]
    return count - 1, n + 1


@njit(cache=True)
def _hold(held, record):
    """Put ``record`` at the end of its user's chain in the held store."""
    records, chains, first, last, free, free_count = held
    free_count[0] -= 1
    slot = free[free_count[0]]
    records[slot] = record
    records[slot]["env_index"] = HELD
    chains[slot] = -1
    user = record["user_id"]
    if last[user] >= 0:
        chains[last[user]] = slot
    else:
        first[user] = slot
    last[user] = slot


@njit(cache=True)
def _chained(records, chains, first, count):
    """The ``count`` held ``records``, user by user along their ``chains`` (starting at ``first``)."""
    out = np.empty(count, records.dtype)
    n = 0
    for user in range(first.shape[0]):
        slot = first[user]
        while slot >= 0:
            out[n] = records[slot]
            n += 1
            slot = chains[slot]
    return out


@njit(cache=True)
def _hold_all(held, records):
    for r in range(records.shape[0]):
        _hold(held, records[r])


@njit(cache=True)
def _release(held, users, env_of_user, now, delivered):
    """Deliver the held records of ``users`` to their sub-environments; returns them (a new array)."""
    records, chains, first, last, free, free_count = held
    due = 0
    for user in users:
        slot = first[user]
        while slot >= 0:
            due += 1
            slot = chains[slot]
    out = np.empty(due, records.dtype)
    n = 0
    for user in users:
        slot = first[user]
        while slot >= 0:
            out[n] = records[slot]
            out[n]["env_index"] = env_of_user[user]
            out[n]["step_arrived"] = now
            delivered[records[slot]["kind"]] += 1
            records[slot]["env_index"] = FREE
            free[free_count[0]] = slot
            free_count[0] += 1
            n += 1
            slot = chains[slot]
        first[user], last[user] = -1, -1
    return out
