"""The training examples of a replay learner under a label strategy (:mod:`agents.labels`).

Each example is one :class:`~agents.labels.Copy` of one impression: ``ref`` names the impression (the replay
serial of its row), ``slot`` the shown item it covers (-1: every item of the slate), ``start`` the step from
which it is trainable, ``as_of`` the step whose arrived feedback are its labels (:data:`LIVE`: as of the step
it trains; :data:`SILENT`: none, every covered item a negative), ``kind`` the strategy's tag its weight depends
on. Examples are kept in a ring of ``capacity``; the learner samples minibatches among the trainable ones whose
impression it still holds. The log also learns the strategy's delay model from the positives it is told of
(:class:`~agents.labels.ArrivalDelays`) and gives the examples' weights (:meth:`ExampleLog.weights`).

:class:`EventualLabels` holds, for the ``oracle`` strategy, the labels the simulator says impressions will
eventually have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from agents.labels import ArrivalDelays, Copy, LabelStrategy
from envs.signals import SIGNALS

LIVE = np.iinfo(np.int64).max
"""``as_of`` of a live copy: its labels are whatever has arrived by the time it trains."""
SILENT = -1
"""``as_of`` of a negative copy: no feedback counts, every covered item is a negative."""


class ExampleLog:
    """Examples scheduled by ``strategy``, at most ``capacity`` (the oldest are overwritten).

    ``learns`` names the positive signals (:data:`agents.labels.POSITIVES`) that the learner keeping the log tells
    it of in :meth:`positives` and labels its copies with; a strategy set on another is refused.

    Attributes:
        ref, slot, kind, start, as_of: ``(capacity,)`` per example (``ref`` -1: empty).
    """

    def __init__(self, strategy: LabelStrategy, capacity: int, learns: tuple[str, ...] = ("consumption",)) -> None:
        if strategy.positive not in learns:
            raise ValueError(
                f"label.positive={strategy.positive!r}, but this learner learns positives of {learns} only"
            )
        self.strategy, self.capacity = strategy, int(capacity)
        self.ref = np.full(capacity, -1, np.int64)
        self.slot = np.full(capacity, -1, np.int16)
        self.kind = np.zeros(capacity, np.int8)
        self.start = np.zeros(capacity, np.int64)
        self.as_of = np.zeros(capacity, np.int64)
        self.added = 0
        self.delays = ArrivalDelays()

    def shown(self, refs: np.ndarray, step: int) -> None:
        """Schedule the copies of impressions ``refs`` ``(B,)`` shown at ``step``."""
        for copy in self.strategy.at_show:
            self._add(refs, np.full(len(refs), -1), copy, step)

    def positives(self, refs: np.ndarray, slots: np.ndarray, elapsed: np.ndarray, step: int) -> None:
        """Shown items ``(refs, slots)`` ``(n,)`` whose first positive (of the strategy's positive signal) arrived at
        ``step``, ``elapsed`` ``(n,)`` steps after they were shown: count their delays, schedule the copies the
        strategy adds for them."""
        self.delays.add(elapsed)
        added = self.strategy.at_positive(elapsed) if len(refs) else None
        if added is not None:
            copy, which = added
            self._add(refs[which], slots[which], copy, step)

    def _add(self, refs: np.ndarray, slots: np.ndarray, copy: Copy, step: int) -> None:
        n = len(refs)
        if n > self.capacity:
            raise ValueError(f"example capacity {self.capacity} is smaller than one step's {n} examples")
        rows = (self.added + np.arange(n)) % self.capacity
        waiting = (self.ref[rows] >= 0) & (self.start[rows] > step)
        if waiting.any():
            raise ValueError(
                f"example capacity {self.capacity} is full of copies not yet trainable ({self.strategy.describe()} "
                f"schedules them up to step {self.start[rows][waiting].max()}); give the learner a larger buffer "
                "(BERT: agent.buffer_size; linear bandits: agent.feedback_window) or a shorter window"
            )
        start = step + copy.delay
        self.ref[rows], self.slot[rows], self.kind[rows] = refs, slots, copy.kind
        self.start[rows], self.as_of[rows] = start, SILENT if copy.negative else LIVE if copy.live else start
        self.added += n

    def weights(self, chosen: np.ndarray, probability: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """The strategy's weights ``(n, k)`` of examples ``chosen`` ``(n,)`` whose covered items are labelled
        ``positive`` ``(n, k)`` bool, the learner's probability of a positive being ``probability`` ``(n, k)``."""
        return self.strategy.weights(self.kind[chosen], probability, positive, self.delays)

    def due(self, now: int) -> np.ndarray:
        """Indices of the examples that become trainable at ``now`` (for learners that take each example once,
        when it is due)."""
        return np.flatnonzero((self.ref >= 0) & (self.start == now))

    def trainable(self, now: int, held: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Indices of the examples trainable at ``now`` whose impression ``held(refs) -> (n,) bool`` says the
        learner still has (and may train on)."""
        ready = np.flatnonzero((self.ref >= 0) & (self.start <= now))
        return ready[held(self.ref[ready])]

    def state_dict(self) -> dict[str, np.ndarray | int]:
        return {
            "ref": self.ref, "slot": self.slot, "kind": self.kind, "start": self.start, "as_of": self.as_of,
            "added": self.added, "delays": self.delays.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: Mapping[str, np.ndarray | int]) -> None:
        for name in ("ref", "slot", "kind", "start", "as_of"):
            getattr(self, name)[...] = state[name]
        self.added = int(state["added"])
        self.delays.load_state_dict(state["delays"])


class EventualLabels:
    """The eventual feedback of the last ``capacity`` impressions by ``ref`` (the ``oracle`` strategy's labels):
    ``values`` ``(capacity, k, S)`` and ``known`` ``(capacity, k, S)`` bool, as the replay's arrived feedback is."""

    def __init__(self, capacity: int, slate_size: int) -> None:
        self.ref = np.full(capacity, -1, np.int64)
        self.values = np.zeros((capacity, slate_size, SIGNALS.count), np.float32)
        self.known = np.zeros((capacity, slate_size, SIGNALS.count), bool)

    def record(self, refs: np.ndarray, impressions: np.ndarray, records: np.ndarray) -> None:
        """Hold the eventual ``records`` (:data:`envs.feedback.FEEDBACK_DTYPE`) of impressions ``impressions``
        ``(B,)`` (increasing ids), known to the learner as ``refs`` ``(B,)``."""
        rows = refs % len(self.ref)
        self.ref[rows] = refs
        self.values[rows], self.known[rows] = slate_outcome(impressions, records, self.values.shape[1])

    def labels(self, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``values``, ``known`` ``(n, k, S)`` of impressions ``refs`` ``(n,)`` (all silent where not held)."""
        rows = refs % len(self.ref)
        held = (self.ref[rows] == refs)[:, None, None]
        return self.values[rows], self.known[rows] & held

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"ref": self.ref, "values": self.values, "known": self.known}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for name in ("ref", "values", "known"):
            getattr(self, name)[...] = state[name]


def slate_outcome(impressions: np.ndarray, records: np.ndarray, slate_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` float32 and ``known`` bool ``(B, k, S)``: the feedback ``records``
    (:data:`envs.feedback.FEEDBACK_DTYPE`) of impressions ``impressions`` ``(B,)`` (increasing ids) by shown position
    and signal; other records are ignored."""
    values = np.zeros((len(impressions), slate_size, SIGNALS.count), np.float32)
    known = np.zeros(values.shape, bool)
    at = np.minimum(np.searchsorted(impressions, records["impression_id"]), max(len(impressions) - 1, 0))
    mine = impressions[at] == records["impression_id"] if len(impressions) else np.zeros(len(records), bool)
    row, pos, kind = at[mine], records["position"][mine], records["kind"][mine]
    values[row, pos, kind], known[row, pos, kind] = records["value"][mine], True
    return values, known
