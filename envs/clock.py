"""The world clock and the publication schedule of a catalogue whose items come and go.

**The clock.** One tick is one step of the world: every session of a simulator (one in the single environment,
``N`` in the vector environment) takes one step per tick, so every session lives on the same clock
(``Simulator.clock``). Each domain says how long a tick lasts (:attr:`envs.domain.Domain.tick_seconds`: a minute
for news), and every span of the simulator is counted in ticks of it: feedback delays, item lifetimes, item ages,
freshness half-lives and the time until a user returns.

**Publication.** Items are numbered in the order they are published (their *serial*: 0, 1, 2, ...). A world of
``S`` item slots starts with serials ``0 .. S − 1``, published before tick 0 at the same pace as later ones, and at
``rate`` items per tick evenly spaced, by tick ``t`` (negative ``t`` included) the serials below

    C(t) = S + ⌊rate · t⌋

exist; serial ``n`` was published at tick ``T(n) = min {t : C(t) > n}``. Serial ``n`` lives in slot ``n mod S``,
so a new item takes the slot of the oldest one (a ring): memory stays flat whatever the run's length.

**Lifetime.** An item is *live* (offered as a candidate) at tick ``t`` while its age ``t − T(n)`` is at most the
lifetime ``L`` ticks. The step at tick ``t`` shows items live at ``t`` and draws the next candidates among those live
at ``t + 1``, after the items of ``t + 1`` were published; so the slots must hold every item published from tick
``t − L`` to ``t + 1``, which :meth:`Schedule.of` checks as ``⌊rate · (L + 2)⌋ + 1 ≤ S`` (a slot is reused only
after its item expired and left every candidate list). Without a lifetime, an item is live as long as the slots
hold it: the largest such ``L``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """When each item of a churning catalogue is published and how long it stays live.

    Attributes:
        rate: items published per tick (> 0).
        slots: ``S``, item slots (the catalogue size).
        lifetime: ``L``, ticks an item stays live after its publication.
    """

    rate: float
    slots: int
    lifetime: int

    @classmethod
    def of(cls, slots: int, rate: float, lifetime: int | None) -> Schedule:
        """The schedule of ``rate`` items per tick over ``slots`` slots; ``lifetime`` None: the longest the slots
        hold. Refused, naming the values, when the slots cannot hold an item for ``lifetime`` ticks (or one)."""
        if lifetime is None:
            lifetime = max(math.floor((slots - 1) / rate) - 2, 0)
            while cls._holds(slots, rate, lifetime + 1):
                lifetime += 1
            while lifetime > 0 and not cls._holds(slots, rate, lifetime):
                lifetime -= 1
        if not cls._holds(slots, rate, lifetime):
            raise ValueError(
                f"num_items={slots} slots cannot hold the live items of publish_rate={rate:g} with "
                f"item_lifetime={lifetime}: the items of {lifetime + 2} ticks need "
                f"{math.floor(rate * (lifetime + 2)) + 1} slots; expected num_items >= that (or a lower publish_rate "
                "or a shorter item_lifetime)"
            )
        return cls(rate, slots, lifetime)

    @staticmethod
    def _holds(slots: int, rate: float, lifetime: int) -> bool:
        return math.floor(rate * (lifetime + 2)) + 1 <= slots

    def published_by(self, tick: int) -> int:
        """``C(tick)``: how many serials exist at ``tick`` (the serials below it)."""
        return self.slots + math.floor(self.rate * tick)

    def ticks_of(self, serials: np.ndarray) -> np.ndarray:
        """``(n,)`` int64 ``T(serial)``, the tick each of ``serials`` ``(n,)`` was published."""
        serials = np.asarray(serials, np.int64)
        ticks = np.ceil((serials - self.slots + 1) / self.rate).astype(np.int64)  # T(n), give or take a tick
        counts = self.slots + np.floor(self.rate * ticks).astype(np.int64)
        ticks -= (self.slots + np.floor(self.rate * (ticks - 1)).astype(np.int64)) > serials  # C(T − 1) > n: earlier
        ticks += counts <= serials  # C(T) <= n: later
        return ticks

    def live(self, tick: int) -> tuple[int, int]:
        """``(first, end)``: the serials live at ``tick`` are ``first .. end − 1``."""
        return self.published_by(tick - self.lifetime - 1), self.published_by(tick)

    @property
    def fewest_live(self) -> int:
        """A lower bound of the live items at any tick: ``⌊rate · (L + 1)⌋ − 1`` (one less for rounding)."""
        return math.floor(self.rate * (self.lifetime + 1)) - 1
