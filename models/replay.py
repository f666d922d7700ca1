"""The feedback replay: shown slates joined with the feedback that arrives for them, however late.

One row per *impression* (one slate shown to one user at one step), in a ring of ``capacity`` rows.
Arrived feedback records are joined to their row by ``impression_id`` and to the slot by ``position``,
so a rating that arrives 30 steps after the slate trains the item it rates. Each row also remembers the
user's context when the slate was chosen: the session history and a snapshot of the user's memory.

Each arrived record also stores the step it arrived at, so a label strategy can read a row's labels *as of* any
step (:meth:`FeedbackReplay.arrived_by`): what a learner would have known then.

The *memory* of a user is the keys of their ``memory_size`` most recent engagements (consumed items),
across sessions; a key is ``serial * slate_size + position`` of the engagement's row. It lives as long as
the row it points at, so memory and replay share one bound. Held-out rows (for measuring rating error)
are joined but never enter a memory nor a training batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.signals import SIGNALS


@dataclass(frozen=True)
class Engagements:
    """Engagements looked up by key, arrays shaped like the keys ``(N, P)``.

    Attributes:
        items: catalogue index (0 where invalid).
        values, arrived: ``(N, P, S)`` raw feedback.
        text: text id of the review/comment, -1 for none.
        step: the agent step the item was shown at.
        valid: the key points at a live engagement.
    """

    items: np.ndarray
    values: np.ndarray
    arrived: np.ndarray
    text: np.ndarray
    step: np.ndarray
    valid: np.ndarray


class FeedbackReplay:
    """A bounded table of impressions with their joined feedback, and every user's recent engagements.

    Args:
        capacity: rows kept (the oldest are overwritten).
        slate_size: ``k``.
        history_length: ``H``, session history items stored per row.
        memory_size: ``P``, engagements remembered per user.
        num_users: users in the population (ids ``0 .. num_users - 1``).
        item_stats: width of the item statistics stored with each shown item.
    """

    def __init__(
        self, capacity: int, slate_size: int, history_length: int, memory_size: int, num_users: int, item_stats: int
    ) -> None:
        k, s = slate_size, SIGNALS.count
        self.capacity, self.slate_size = capacity, slate_size
        self.serial = np.full(capacity, -1, np.int64)
        self.impression = np.full(capacity, -1, np.int64)
        self.user = np.zeros(capacity, np.int64)
        self.step = np.zeros(capacity, np.int64)
        self.holdout = np.zeros(capacity, bool)
        self.items = np.zeros((capacity, k), np.int64)
        self.item_stats = np.zeros((capacity, k, item_stats), np.float32)
        self.history = np.full((capacity, history_length), -1, np.int64)
        self.memory = np.full((capacity, memory_size), -1, np.int64)
        self.values = np.zeros((capacity, k, s), np.float32)
        self.arrived_at = np.full((capacity, k, s), -1, np.int32)  # agent steps (int32: half a checkpoint)
        self.text = np.full((capacity, k), -1, np.int32)
        self.user_memory = np.full((num_users, memory_size), -1, np.int64)
        self.added = 0
        self.epoch_start = 0

    def new_epoch(self) -> None:
        """Impression ids start again (a new environment or a world reset): earlier rows are no longer found by
        their ids."""
        self.epoch_start = self.added

    def add(
        self,
        impressions: np.ndarray,
        users: np.ndarray,
        items: np.ndarray,
        history: np.ndarray,
        step: int,
        holdout: np.ndarray,
        item_stats: np.ndarray,
    ) -> np.ndarray:
        """Append ``B`` impressions: ids ``(B,)``, users ``(B,)``, shown items ``(B, k)``, session
        history ``(B, H)`` at the time of choice, the agent ``step``, ``(B,)`` held-out flags, and the
        shown items' statistics ``(B, k, A)`` at the time of choice (see :class:`models.features.ItemStats`).
        Returns the impressions' serials ``(B,)`` (see :meth:`row_of`)."""
        n = len(impressions)
        if n > self.capacity:
            raise ValueError(f"buffer_size={self.capacity} is smaller than one step's {n} impressions")
        previous = self.impression[(self.added - 1) % self.capacity] if self.added > self.epoch_start else -1
        if np.any(np.diff(impressions) <= 0) or (n and impressions[0] <= previous):
            raise ValueError(
                "impression ids must increase within an epoch (as an environment hands them out); "
                "call new_epoch() when they start again"
            )
        rows = (self.added + np.arange(n)) % self.capacity
        self.serial[rows] = self.added + np.arange(n)
        self.impression[rows], self.user[rows], self.step[rows], self.holdout[rows] = impressions, users, step, holdout
        self.items[rows], self.history[rows], self.item_stats[rows] = items, history, item_stats
        self.memory[rows] = self.user_memory[users]
        self.values[rows], self.arrived_at[rows], self.text[rows] = 0.0, -1, -1
        self.added += n
        return self.serial[rows].copy()

    @property
    def arrived(self) -> np.ndarray:
        """``(capacity, k, S)`` bool: which feedback has arrived for each shown item."""
        return self.arrived_at >= 0

    def join(self, records: np.ndarray, text_ids: np.ndarray, now: int) -> tuple[np.ndarray, np.ndarray]:
        """Write ``records`` (:data:`envs.feedback.FEEDBACK_DTYPE`) that arrived at step ``now`` into their rows;
        ``text_ids`` ``(n,)`` are their texts' ids (-1 for none). New engagements enter their user's memory.

        Returns each record's row ``(n,)``, -1 where it matched no impression in the buffer (too old, or shown
        by another environment), and ``(n,)`` bool: the record is its shown item's first feedback (the item
        has just turned out consumed)."""
        found = self.rows_of_impressions(records["impression_id"])
        pos = records["position"].astype(np.int64)
        match = found >= 0
        match[match] &= self.items[found[match], pos[match]] == records["item_index"][match]
        found[~match] = -1
        rows, pos, kinds = found[match], pos[match], records["kind"][match].astype(np.int64)
        fresh = (self.arrived_at[rows, pos] < 0).all(-1)
        fresh &= first_occurrences(rows * self.slate_size + pos)
        self.values[rows, pos, kinds] = records["value"][match]
        self.arrived_at[rows, pos, kinds] = now
        texts = text_ids[match]
        self.text[rows[texts >= 0], pos[texts >= 0]] = texts[texts >= 0]
        self._remember(rows[fresh], pos[fresh])
        first = np.zeros(len(records), bool)
        first[np.flatnonzero(match)[fresh]] = True
        return found, first

    def _remember(self, rows: np.ndarray, pos: np.ndarray) -> None:
        """The engagements at ``rows``, ``pos`` ``(n,)`` (new keys, in arrival order) enter their users' memories:
        each memory keeps the last ``P`` of its old keys followed by its new ones."""
        keep = ~self.holdout[rows]
        users, keys = self.user[rows[keep]], self.serial[rows[keep]] * self.slate_size + pos[keep]
        if not len(keys):
            return
        order = np.argsort(users, kind="stable")
        users, keys = users[order], keys[order]
        held, start, count = np.unique(users, return_index=True, return_counts=True)
        p, most = self.user_memory.shape[1], int(count.max())
        joined = np.full((len(held), most + p), -1, np.int64)  # per user: padding, old keys, new keys
        shift = (most - count)[:, None]
        np.put_along_axis(joined, shift + np.arange(p), self.user_memory[held], axis=1)
        who = np.repeat(np.arange(len(held)), count)
        joined[who, shift[who, 0] + p + np.arange(len(keys)) - start[who]] = keys
        self.user_memory[held] = joined[:, -p:]

    def engagements(self, keys: np.ndarray) -> Engagements:
        """Look up engagement ``keys`` ``(N, P)`` (-1 pads); overwritten ones come back invalid."""
        serial = np.where(keys >= 0, keys // self.slate_size, -1)
        rows = np.maximum(serial, 0) % self.capacity
        valid = (serial >= 0) & (self.serial[rows] == serial)
        slots = rows * self.slate_size + np.where(keys >= 0, keys % self.slate_size, 0)
        return Engagements(
            items=np.where(valid, _take_slots(self.items, slots), 0),
            values=_take_slots(self.values, slots),
            arrived=(_take_slots(self.arrived_at, slots) >= 0) & valid[..., None],
            text=np.where(valid, _take_slots(self.text, slots), -1),
            step=self.step[rows],
            valid=valid,
        )

    def rows_of_impressions(self, ids: np.ndarray) -> np.ndarray:
        """The row ``(n,)`` of each impression ``ids`` ``(n,)`` of this epoch still held, -1 for the others. Ids
        increase with the rows' serials within an epoch, so a binary search over the held ones finds them."""
        first = max(self.epoch_start, self.added - self.capacity)
        held = self.impression[np.arange(first, self.added) % self.capacity]
        if not len(held):
            return np.full(len(ids), -1, np.int64)
        at = np.minimum(np.searchsorted(held, ids), len(held) - 1)
        return np.where(held[at] == ids, (first + at) % self.capacity, -1)

    def row_of(self, serials: np.ndarray) -> np.ndarray:
        """The row ``(n,)`` of each impression ``serials`` ``(n,)`` (see :attr:`serial`), -1 where it was
        overwritten."""
        rows = serials % self.capacity
        return np.where(self.serial[rows] == serials, rows, -1)

    def trainable(self, serials: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: impressions ``serials`` still held and not held out (they may train)."""
        rows = self.row_of(serials)
        return (rows >= 0) & ~self.holdout[rows]

    def arrived_by(self, rows: np.ndarray, as_of: np.ndarray) -> np.ndarray:
        """``(n, k, S)`` bool: the feedback of ``rows`` ``(n,)`` that had arrived by step ``as_of`` ``(n,)``."""
        at = self.arrived_at[rows]
        return (at >= 0) & (at <= as_of[:, None, None])

    def rated_holdout(self, rating_kind: int) -> np.ndarray:
        """``(n, 2)`` (row, position) of held-out shown items that received a rating."""
        return np.argwhere(self.holdout[:, None] & (self.arrived_at[:, :, rating_kind] >= 0))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array plus counters."""
        names = (
            "serial",
            "impression",
            "user",
            "step",
            "holdout",
            "items",
            "item_stats",
            "history",
            "memory",
            "values",
            "arrived_at",
            "text",
            "user_memory",
        )
        return {**{n: getattr(self, n) for n in names}, "counters": np.array([self.added, self.epoch_start])}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Undo :meth:`state_dict`."""
        for name, value in state.items():
            if name != "counters":
                getattr(self, name)[...] = value
        self.added, self.epoch_start = (int(x) for x in state["counters"])


def _take_slots(table: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """``table[row, position]`` of a ``(capacity, k, ...)`` table at flat ``slots = row * k + position`` (any
    shape): one ``np.take`` over the flattened rows, several times faster than indexing by two arrays."""
    return np.take(table.reshape(-1, *table.shape[2:]), slots, axis=0)


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: ``keys[i]`` occurs nowhere before ``i`` in ``keys`` (``(n,)`` integers)."""
    first = np.zeros(len(keys), bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first
