"""Feedback records and the channel that delays and delivers them.

Every reaction of a simulated user is one record of :data:`FEEDBACK_DTYPE` (a numpy structured array
row). The :class:`FeedbackChannel` gives each record an arrival step drawn from its signal's delay
distribution and hands it out when due. Under local privacy the records it receives are already private:
users privatise their reports before they leave them (:mod:`envs.privacy`).

Conservation: every record submitted is delivered exactly once. A record is delivered to the session it
came from; if that session has ended, to the same user's session running elsewhere in a batch; if the user
is away, it is held and delivered when the user's next session starts (:meth:`FeedbackChannel.release`;
the simulator pays its reward with that session's first step). Until then it is counted in
:attr:`FeedbackChannel.pending`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from envs.draws import bernoulli, draw_key, geometric, geometric_log_odds
from envs.signals import SIGNALS, Signal

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
TONES = len(OPINIONS)
"""Tones of opinion text, lowest first: a rating's tone is the nearest of ``TONES`` even steps of its scale (on 1..5
whole stars, its number of stars)."""


def opinion_text(text_id: int) -> str | None:
    """The review/comment text of a record's ``text_id``; its tone is ``text_id // PHRASINGS`` of :data:`TONES`
    (``text_id // PHRASINGS + 1`` stars on a 1..5 scale)."""
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
    with mean ``mean[k]`` truncated at ``max_steps``; otherwise the delay is fixed at ``mean[k]``. A fixed mean
    that is not a whole number of steps (e.g. after ``scale``: 1 step × 0.5) is rounded at random, to
    ``⌊mean⌋ + 1`` with probability ``mean − ⌊mean⌋`` and to ``⌊mean⌋`` otherwise, so the mean delay is the
    scaled mean (``delay=short`` turns a 1-step delay into 0 or 1 step, half the time each); a whole-number
    mean stays fixed.

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
        ``scale`` multiplies every mean (0 turns all delays off; a fixed mean it makes fractional is rounded
        at random, see above).
        """
        mean = np.zeros(SIGNALS.count)
        geometric = np.zeros(SIGNALS.count, dtype=bool)
        for name, spec in (delays or {}).items():
            kind = SIGNALS.parse(name)
            mean[kind], geometric[kind] = parse_delay(name, spec)
        mean *= scale
        if (mean > max_steps).any():
            worst = SIGNALS.name(int(np.argmax(mean)))
            raise ValueError(f"delay of {worst!r} has mean {mean.max():g} steps, above max_delay={max_steps}")
        return cls(mean=mean, geometric=geometric, max_steps=int(max_steps))


def parse_delay(name: str, spec: object) -> tuple[float, bool]:
    """``(mean steps, geometric?)`` of the delay ``spec`` of signal ``name`` (see :meth:`DelayTable.parse`)."""
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


NO_KEY = np.uint64(0)  # the stream key of a step without new records (which draws none)
HELD = -1  # env_index of a record waiting for its user's next session
RECORD_DRAWS = 1  # a fresh record's stream position (its delay): RECORD_DRAWS · r


class ChannelParams(NamedTuple):
    """The channel's settings as its compiled functions read them (per-signal arrays are ``(S,)``)."""

    mean: np.ndarray  # float64 delay means, steps
    log_odds: np.ndarray  # float64 the geometric delay's parameter (envs.draws.geometric_log_odds), 0 if fixed
    max_steps: int  # the largest delay


class FeedbackChannel:
    """Delays and delivers feedback records for a batch of sub-environments.

    Scheduled records wait in a timing wheel: :class:`RecordChains` keyed by arrival step modulo
    ``max_delay + 1``, so a step reads only the records due then, whatever the number pending. Records
    held for an absent user wait in chains keyed by user, so a user's return costs only their own records.

    Args:
        delays: per-signal delay distributions.
    """

    def __init__(self, delays: DelayTable) -> None:
        self.delays = delays
        log_odds = np.array(
            [geometric_log_odds(m) if g and m > 0 else 0.0 for m, g in zip(delays.mean, delays.geometric, strict=True)]
        )
        self._params = ChannelParams(
            mean=delays.mean,
            log_odds=log_odds,
            max_steps=delays.max_steps,
        )
        self._param_args = tuple(self._params)  # the compiled functions' form of a named group
        self._wheel_size = delays.max_steps + 1  # pending arrivals span at most this many steps
        self.clear()

    def clear(self) -> None:
        """Forget every pending record and zero the counters."""
        self._scheduled = RecordChains.empty(1024, self._wheel_size)  # keyed by arrival step % wheel size
        self._held = RecordChains.empty(1024, 0)  # keyed by user, waiting for absent users
        self._last_step = -1  # the last step delivered (-1: look at the whole wheel next time)
        self.generated = np.zeros(len(self.delays.mean), dtype=np.int64)
        self.delivered = np.zeros(len(self.delays.mean), dtype=np.int64)

    @property
    def pending(self) -> int:
        """Records submitted and not yet delivered."""
        return self._scheduled.count + self._held.count

    def pending_records(self) -> np.ndarray:
        """A copy of the pending records (``step_arrived`` is their scheduled arrival; ``env_index`` -1
        marks records held for an absent user)."""
        return np.concatenate([self._scheduled.records(), self._held.records()])

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
        scheduled = pending[~held]
        self._scheduled = RecordChains.of(scheduled, scheduled["step_arrived"] % self._wheel_size, self._wheel_size)
        self._held = RecordChains.of(pending[held], pending[held]["user_id"])
        self._last_step = -1
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
        held for the user's next session. Due records come out in the order they were scheduled.
        """
        n = len(records)
        self._scheduled = self._scheduled.with_room(n, self._wheel_size)
        self._held = self._held.with_room(self._scheduled.count + n, len(env_of_user))
        arrived = _advance(
            self._scheduled.args,
            self._held.args,
            records,
            now,
            max(self._last_step + 1, now - self._wheel_size + 1),
            draw_key(rng) if n else NO_KEY,
            self._param_args,
            session_of_env,
            env_of_user,
            self.generated,
            self.delivered,
        )
        self._last_step = now
        return arrived

    def release(self, users: np.ndarray, env_of_user: np.ndarray, now: int) -> np.ndarray:
        """The held records of ``users`` ``(n,)`` (now active), delivered to their sub-environments at ``now``."""
        self._held = self._held.with_room(0, len(env_of_user))
        return _release(self._held.args, users, env_of_user, now, self.delivered)


class Chains(NamedTuple):
    """The arrays of :class:`RecordChains`, what its compiled functions work on (as a plain tuple, named again
    on entry: see :mod:`envs.dynamics` on state by name)."""

    records: np.ndarray  # (capacity,) FEEDBACK_DTYPE slots
    next_slot: np.ndarray  # (capacity,) int64 the slot after each slot in its chain, -1 at the end
    first: np.ndarray  # (keys,) int64 the first slot of each key's chain, -1 for none
    last: np.ndarray  # (keys,) int64 its last slot
    free: np.ndarray  # (capacity,) int64 a stack of the free slots
    free_count: np.ndarray  # (1,) int64 the stack's height


class RecordChains:
    """Records chained by an integer key (an arrival step, a user): slots of a :data:`FEEDBACK_DTYPE`
    array linked oldest first per key, with a stack of free slots (:attr:`arrays`, a :class:`Chains`;
    :attr:`args`, the same as the plain tuple compiled functions take)."""

    def __init__(self, arrays: Chains) -> None:
        self.arrays = arrays
        self.args = tuple(arrays)

    @classmethod
    def empty(cls, capacity: int, num_keys: int) -> RecordChains:
        return cls(
            Chains(
                records=np.empty(capacity, FEEDBACK_DTYPE),
                next_slot=np.full(capacity, -1, np.int64),
                first=np.full(num_keys, -1, np.int64),
                last=np.full(num_keys, -1, np.int64),
                free=np.arange(capacity - 1, -1, -1, dtype=np.int64),  # slot 0 is taken first
                free_count=np.array([capacity], np.int64),
            )
        )

    @classmethod
    def of(cls, records: np.ndarray, keys: np.ndarray, num_keys: int = 0, capacity: int = 1024) -> RecordChains:
        """Chains holding ``records`` under ``keys`` ``(n,)`` (each key's records in the given order)."""
        keys = np.asarray(keys, np.int64)
        store = cls.empty(max(capacity, 2 * len(records)), max(num_keys, int(keys.max()) + 1 if len(keys) else 0))
        _append_all(store.args, records, keys)
        return store

    @property
    def count(self) -> int:
        return len(self.arrays.records) - int(self.arrays.free_count[0])

    def keys(self) -> np.ndarray:
        """``(count,)`` the key of each record of :meth:`records`."""
        return _chained_keys(self.arrays.next_slot, self.arrays.first, self.count)

    def records(self) -> np.ndarray:
        """A copy of the records, key by key, each key's oldest first."""
        a = self.arrays
        return _chained(a.records, a.next_slot, a.first, self.count)

    def with_room(self, extra: int, num_keys: int) -> RecordChains:
        """These chains, or a larger copy of them, with at least ``extra`` free slots and ``num_keys`` keys."""
        a = self.arrays
        free = a.free_count[0]
        if free >= extra and len(a.first) >= num_keys:
            return self
        capacity = len(a.records) if free >= extra else max(2 * len(a.records), self.count + extra)
        return RecordChains.of(self.records(), self.keys(), max(num_keys, len(a.first)), capacity)


@njit(cache=True)
def _advance(scheduled, held, records, now, first_step, key, params, session_of_env, env_of_user, generated, delivered):
    """Deliver what the wheel holds for steps ``first_step..now``, then the fresh ``records`` shown at ``now``
    that have no delay; chain the other fresh records under their arrival steps. Records whose user is
    away move to the ``held`` chains. Returns the delivered records (a new array), in the order they were
    scheduled. ``scheduled``, ``held``: :class:`Chains`; ``params``: :class:`ChannelParams` (plain tuples).
    Fresh record ``r`` reads stream position ``RECORD_DRAWS · r`` (its delay)."""
    scheduled, held, params = Chains(*scheduled), Chains(*held), ChannelParams(*params)
    wheel = scheduled.first.shape[0]
    delays = np.empty(records.shape[0], np.int64)
    due = 0
    for r in range(records.shape[0]):
        delays[r] = _delay(records[r]["kind"], params, key, RECORD_DRAWS * r)
        due += delays[r] == 0 and _destination(records[r], session_of_env, env_of_user) >= 0
    for step in range(first_step, now + 1):
        due += _count_due(scheduled, step % wheel, now, session_of_env, env_of_user)
    out = np.empty(due, records.dtype)
    n = 0
    for step in range(first_step, now + 1):
        n = _deliver_due(scheduled, held, step % wheel, now, session_of_env, env_of_user, out, n, delivered)
    _schedule(
        scheduled, held, records, delays, now, key, params, session_of_env, env_of_user, out, n, generated, delivered
    )
    return out


@njit(cache=True, _nrt=False, inline="always")
def _delay(kind, params, key, position):
    """Steps until a record of ``kind`` arrives, from the uniform at ``position``: geometric (truncated at the
    maximum), or fixed at the mean, a fractional mean rounded at random to keep it (see :class:`DelayTable`)."""
    if params.log_odds[kind] < 0:  # geometric with mean > 0
        delay, _ = geometric(params.log_odds[kind], key, position)
        return min(int(delay), params.max_steps)
    whole = math.floor(params.mean[kind])
    up, _ = bernoulli(params.mean[kind] - whole, key, position)  # never up for a whole-number mean
    return int(whole) + int(up)


@njit(cache=True, _nrt=False)
def _schedule(
    scheduled, held, records, delays, now, key, params, session_of_env, env_of_user, out, n, generated, delivered
):
    """Deliver the fresh ``records`` with no delay (into ``out`` from ``n`` on) and chain the others under their
    arrival steps."""
    wheel = scheduled.first.shape[0]
    for r in range(records.shape[0]):
        generated[records[r]["kind"]] += 1
        value = records[r]["value"]
        if delays[r] == 0:
            n = _deliver(records[r], value, now, now, held, session_of_env, env_of_user, out, n, delivered)
        else:
            record = scheduled.records[_append(scheduled, records[r], (now + delays[r]) % wheel)]
            record["step_arrived"] = now + delays[r]
            record["value"] = value


@njit(cache=True, _nrt=False, inline="always")
def _destination(record, session_of_env, env_of_user):
    """The sub-environment a due record goes to: its own if its session still runs, else its user's, else -1."""
    env = record["env_index"]
    if session_of_env[env] == record["session_id"]:
        return env
    return env_of_user[record["user_id"]]


@njit(cache=True, _nrt=False)
def _count_due(scheduled, chain, now, session_of_env, env_of_user):
    """How many records of chain ``chain`` are due by ``now`` and have a sub-environment to go to."""
    records = scheduled.records
    due = 0
    slot = scheduled.first[chain]
    while slot >= 0:
        due += records[slot]["step_arrived"] <= now and _destination(records[slot], session_of_env, env_of_user) >= 0
        slot = scheduled.next_slot[slot]
    return due


@njit(cache=True, _nrt=False)
def _deliver_due(scheduled, held, chain, now, session_of_env, env_of_user, out, n, delivered):
    """Take the records due by ``now`` out of chain ``chain`` and deliver them (into ``out`` from ``n`` on).
    Returns the new count in ``out``."""
    records, chains, first, last = scheduled.records, scheduled.next_slot, scheduled.first, scheduled.last
    previous, slot = -1, first[chain]
    while slot >= 0:
        following = chains[slot]
        record = records[slot]
        if record["step_arrived"] > now:
            previous, slot = slot, following
            continue
        n = _deliver(
            record, record["value"], record["step_arrived"], now, held, session_of_env, env_of_user, out, n, delivered
        )
        if previous >= 0:
            chains[previous] = following
        else:
            first[chain] = following
        if following < 0:
            last[chain] = previous
        _release_slot(scheduled, slot)
        slot = following
    return n


@njit(cache=True, _nrt=False, inline="always")
def _deliver(record, value, arrival, now, held, session_of_env, env_of_user, out, n, delivered):
    """Deliver ``record`` with ``value`` into ``out[n]`` at ``now``, or, when its user is away, hold it (its
    scheduled ``arrival`` kept). Returns the new count in ``out``."""
    env = _destination(record, session_of_env, env_of_user)
    if env < 0:
        kept = held.records[_append(held, record, record["user_id"])]
        kept["env_index"], kept["step_arrived"], kept["value"] = HELD, arrival, value
        return n
    return _put(record, value, env, now, out, n, delivered)


@njit(cache=True, _nrt=False, inline="always")
def _put(record, value, env, now, out, n, delivered):
    """Write ``record`` with ``value`` into ``out[n]``, delivered to ``env`` at ``now``; returns ``n + 1``."""
    out[n] = record
    out[n]["env_index"], out[n]["step_arrived"], out[n]["value"] = env, now, value
    delivered[record["kind"]] += 1
    return n + 1


@njit(cache=True, _nrt=False, inline="always")
def _release_slot(chains_of, slot):
    """Return ``slot`` to the free-slot stack of ``chains_of`` (a :class:`Chains`; the caller has unlinked it)."""
    chains_of.free[chains_of.free_count[0]] = slot
    chains_of.free_count[0] += 1


@njit(cache=True, _nrt=False, inline="always")
def _append(chains_of, record, chain):
    """Put ``record`` at the end of chain ``chain`` of ``chains_of`` (a :class:`Chains`); returns its slot."""
    c = chains_of
    c.free_count[0] -= 1
    slot = c.free[c.free_count[0]]
    c.records[slot] = record
    c.next_slot[slot] = -1
    if c.last[chain] >= 0:
        c.next_slot[c.last[chain]] = slot
    else:
        c.first[chain] = slot
    c.last[chain] = slot
    return slot


@njit(cache=True)
def _append_all(chains_of, records, keys):
    """Chain each of ``records`` under its key (``chains_of``: a :class:`Chains` as a tuple)."""
    chains_of = Chains(*chains_of)
    for r in range(records.shape[0]):
        _append(chains_of, records[r], keys[r])


@njit(cache=True)
def _chained(records, chains, first, count):
    """The ``count`` chained ``records``, key by key along their ``chains`` (starting at ``first``)."""
    out = np.empty(count, records.dtype)
    n = 0
    for key in range(first.shape[0]):
        slot = first[key]
        while slot >= 0:
            out[n] = records[slot]
            n += 1
            slot = chains[slot]
    return out


@njit(cache=True)
def _chained_keys(chains, first, count):
    """The key of each record in the order of :func:`_chained`."""
    out = np.empty(count, np.int64)
    n = 0
    for key in range(first.shape[0]):
        slot = first[key]
        while slot >= 0:
            out[n] = key
            n += 1
            slot = chains[slot]
    return out


@njit(cache=True)
def _release(held, users, env_of_user, now, delivered):
    """Deliver the held records of ``users`` to their sub-environments; returns them (a new array). ``held``:
    a :class:`Chains` as a tuple."""
    held = Chains(*held)
    records, chains, first, last = held.records, held.next_slot, held.first, held.last
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
            n = _put(records[slot], records[slot]["value"], env_of_user[user], now, out, n, delivered)
            _release_slot(held, slot)
            slot = chains[slot]
        first[user], last[user] = -1, -1
    return out
