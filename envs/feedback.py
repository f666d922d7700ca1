"""Feedback events and the channel that delays, privatises and delivers them.

Every reaction of a simulated user is one record of :data:`FEEDBACK_DTYPE` (a numpy structured array
row). The :class:`FeedbackChannel` gives each record an arrival step drawn from its signal's delay
distribution, optionally privatises its value (local differential privacy) and hands it out when due.

Conservation: every record submitted is delivered exactly once. A record is delivered to the session it
came from; if that session has ended, to the same user's session running elsewhere in a batch; if the user
is away, it waits in the user's backlog and is delivered by :meth:`FeedbackChannel.take_backlog` when the
user's next session starts. Until then it is counted in :attr:`FeedbackChannel.pending`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

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
        ("text", object),  # review/comment text, else None
    ]
)


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


def as_events(records: np.ndarray) -> list[FeedbackEvent]:
    """Turn an array of :data:`FEEDBACK_DTYPE` records into :class:`FeedbackEvent` objects."""
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
            r["text"],
        )
        for r in records
    ]


EMPTY_FEEDBACK = np.empty(0, dtype=FEEDBACK_DTYPE)


@dataclass(frozen=True)
class DelayTable:
    """Per-signal delay distributions, in environment steps.

    ``mean[k] == 0`` means no delay. ``geometric[k]`` selects a geometric distribution on {0, 1, 2, ...}
    with mean ``mean[k]`` truncated at ``max_steps``; otherwise the delay is the fixed ``round(mean[k])``.

    Attributes:
        mean: ``(num_signals,)`` float, steps.
        geometric: ``(num_signals,)`` bool.
        max_steps: the largest delay any record can get.
    """

    mean: np.ndarray
    geometric: np.ndarray
    max_steps: int

    @classmethod
    def parse(
        cls, delays: Mapping[str, object] | None, scale: float = 1.0, max_steps: int = 200
    ) -> DelayTable:
        """Build from ``{"rating": "geometric:5", "dwell_seconds": 1, "click": "none"}``.

        A value is a number of steps (fixed delay), ``"none"``, ``"fixed:N"`` or ``"geometric:MEAN"``.
        ``scale`` multiplies every mean (0 turns all delays off).
        """
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"delay_scale must be a finite number >= 0, got {scale!r}")
        if int(max_steps) != max_steps or max_steps < 0:
            raise ValueError(f"max_delay must be an integer >= 0, got {max_steps!r}")
        mean = np.zeros(NUM_SIGNALS)
        geometric = np.zeros(NUM_SIGNALS, dtype=bool)
        for name, spec in (delays or {}).items():
            kind = Signal.parse(name)
            mean[kind], geometric[kind] = _parse_delay(name, spec)
        mean *= scale
        if (mean > max_steps).any():
            worst = Signal(int(np.argmax(mean))).name.lower()
            raise ValueError(
                f"delay of {worst!r} has mean {mean.max():g} steps, above max_delay={max_steps}"
            )
        return cls(mean=mean, geometric=geometric, max_steps=int(max_steps))

    def sample(self, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Delays in steps for records of the given ``kinds`` ``(n,)`` → ``(n,)`` int64."""
        delays = np.rint(self.mean[kinds]).astype(np.int64)
        random = self.geometric[kinds]
        if random.any():
            p = 1.0 / (1.0 + self.mean[kinds[random]])
            delays[random] = np.minimum(rng.geometric(p) - 1, self.max_steps)
        return delays


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
            if steps >= 0:
                return steps, dist == "geometric"
        raise ValueError(f"delay for {name!r} is {spec!r}; expected {expected}")
    if isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
        if np.isfinite(spec) and spec >= 0:
            return float(spec), False
    raise ValueError(f"delay for {name!r} is {spec!r}; expected {expected}")


def privatise(records: np.ndarray, epsilon: float, rng: np.random.Generator) -> None:
    """Local differential privacy on ``records["value"]``, in place.

    Binary signals go through randomised response (the true bit is kept with probability
    ``e^ε / (1 + e^ε)``); numeric ones get Laplace noise of scale ``range / ε`` and are clipped back into
    their range (ratings are rounded to whole stars). Text is not privatised.
    """
    kinds = records["kind"]
    values = records["value"]
    binary = IS_BINARY[kinds]
    keep = rng.random(len(records)) < np.exp(epsilon) / (1.0 + np.exp(epsilon))
    values[binary] = np.where(keep[binary], values[binary], 1.0 - values[binary])
    numeric = ~binary
    low, high = VALUE_LOW[kinds[numeric]], VALUE_HIGH[kinds[numeric]]
    noisy = values[numeric] + rng.laplace(0.0, (high - low) / epsilon)
    noisy = np.clip(noisy, low, high)
    rating = kinds[numeric] == Signal.RATING
    noisy[rating] = np.rint(noisy[rating])
    values[numeric] = noisy


class FeedbackChannel:
    """Delays, privatises and delivers feedback records for a batch of sub-environments.

    Args:
        delays: per-signal delay distributions.
        privacy_epsilon: ε of local differential privacy, or None for no privatisation.
    """

    def __init__(self, delays: DelayTable, privacy_epsilon: float | None = None) -> None:
        self.delays = delays
        self.privacy_epsilon = privacy_epsilon
        self.clear()

    def clear(self) -> None:
        """Forget every pending record and zero the counters."""
        self._calendar: dict[int, list[np.ndarray]] = defaultdict(list)
        self._backlog: dict[int, list[np.ndarray]] = {}
        self.generated = np.zeros(NUM_SIGNALS, dtype=np.int64)
        self.delivered = np.zeros(NUM_SIGNALS, dtype=np.int64)

    @property
    def pending(self) -> int:
        """Records submitted and not yet delivered."""
        return int(self.generated.sum() - self.delivered.sum())

    def submit(self, records: np.ndarray, now: int, rng: np.random.Generator) -> None:
        """Schedule fresh ``records`` (shown at step ``now``); those with delay 0 are due at ``now``."""
        if not len(records):
            return
        self.generated += np.bincount(records["kind"], minlength=NUM_SIGNALS)
        if self.privacy_epsilon is not None:
            privatise(records, self.privacy_epsilon, rng)
        arrival = now + self.delays.sample(records["kind"], rng)
        first = arrival[0]
        if (arrival == first).all():
            self._calendar[int(first)].append(records)
            return
        order = np.argsort(arrival, kind="stable")
        arrival = arrival[order]
        cuts = np.flatnonzero(np.diff(arrival)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True):
            self._calendar[int(arrival[start])].append(records[order[start:stop]])

    def collect(
        self, now: int, session_of_env: np.ndarray, env_of_user: np.ndarray
    ) -> np.ndarray:
        """Records due at step ``now``, each with ``env_index`` set to where it is delivered.

        Args:
            session_of_env: ``(num_envs,)`` the session each sub-environment is running.
            env_of_user: ``(num_users,)`` the sub-environment each user is active in, or -1.

        Records whose user is away go to the user's backlog instead of the result.
        """
        due = self._calendar.pop(now, None)
        if due is None:
            return EMPTY_FEEDBACK
        records = due[0] if len(due) == 1 else np.concatenate(due)
        same_session = session_of_env[records["env_index"]] == records["session_id"]
        if not same_session.all():
            target = env_of_user[records["user_id"]]
            moved = ~same_session & (target >= 0)
            records["env_index"][moved] = target[moved]
            away = ~same_session & (target < 0)
            if away.any():
                self._hold(records[away])
                records = records[~away]
        return self._deliver(records, now)

    def take_backlog(self, users: np.ndarray, envs: np.ndarray, now: int) -> np.ndarray:
        """Records that waited for ``users`` ``(n,)``, delivered to ``envs`` ``(n,)`` at step ``now``."""
        found = []
        for user, env in zip(users.tolist(), envs.tolist(), strict=True):
            held = self._backlog.pop(user, None)
            if held is not None:
                records = np.concatenate(held)
                records["env_index"] = env
                found.append(records)
        if not found:
            return EMPTY_FEEDBACK
        return self._deliver(np.concatenate(found), now)

    def _hold(self, records: np.ndarray) -> None:
        for user in np.unique(records["user_id"]).tolist():
            self._backlog.setdefault(user, []).append(records[records["user_id"] == user])

    def _deliver(self, records: np.ndarray, now: int) -> np.ndarray:
        records["step_arrived"] = now
        self.delivered += np.bincount(records["kind"], minlength=NUM_SIGNALS)
        return records
