"""The training examples of a replay learner under a label strategy (:mod:`agents.labels`).

Each example is one :class:`~agents.labels.Copy` of one impression: ``ref`` names the impression (the replay
serial of its row), ``slot`` the shown item it covers (-1: every item of the slate), ``start`` the step from
which it is trainable, ``as_of`` the step whose arrived feedback are its labels (:data:`LIVE`: as of the step
it trains), ``kind`` the strategy's tag its weight depends on. Examples are kept in a ring of ``capacity``;
the learner samples minibatches among the trainable ones whose impression it still holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from agents.labels import Copy, LabelStrategy

LIVE = np.iinfo(np.int64).max
"""``as_of`` of a live copy: its labels are whatever has arrived by the time it trains."""


class ExampleLog:
    """Examples scheduled by ``strategy``, at most ``capacity`` (the oldest are overwritten).

    Attributes:
        ref, slot, kind, start, as_of: ``(capacity,)`` per example (``ref`` -1: empty).
    """

    def __init__(self, strategy: LabelStrategy, capacity: int) -> None:
        self.strategy, self.capacity = strategy, int(capacity)
        self.ref = np.full(capacity, -1, np.int64)
        self.slot = np.full(capacity, -1, np.int16)
        self.kind = np.zeros(capacity, np.int8)
        self.start = np.zeros(capacity, np.int64)
        self.as_of = np.zeros(capacity, np.int64)
        self.added = 0

    def shown(self, refs: np.ndarray, step: int) -> None:
        """Schedule the copies of impressions ``refs`` ``(B,)`` shown at ``step``."""
        for copy in self.strategy.at_show:
            self._add(refs, np.full(len(refs), -1), copy, step)

    def positives(self, refs: np.ndarray, slots: np.ndarray, elapsed: np.ndarray, step: int) -> None:
        """Shown items ``(refs, slots)`` ``(n,)`` whose first positive arrived at ``step``, ``elapsed`` ``(n,)``
        steps after they were shown: schedule the copies the strategy adds for them."""
        added = self.strategy.at_positive(elapsed) if len(refs) else None
        if added is not None:
            copy, which = added
            self._add(refs[which], slots[which], copy, step)

    def _add(self, refs: np.ndarray, slots: np.ndarray, copy: Copy, step: int) -> None:
        n = len(refs)
        if n > self.capacity:
            raise ValueError(f"example capacity {self.capacity} is smaller than one step's {n} examples")
        rows = (self.added + np.arange(n)) % self.capacity
        start = step + copy.delay
        self.ref[rows], self.slot[rows], self.kind[rows] = refs, slots, copy.kind
        self.start[rows], self.as_of[rows] = start, LIVE if copy.live else start
        self.added += n

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
            "added": self.added,
        }  # fmt: skip

    def load_state_dict(self, state: Mapping[str, np.ndarray | int]) -> None:
        for name in ("ref", "slot", "kind", "start", "as_of"):
            getattr(self, name)[...] = state[name]
        self.added = int(state["added"])
