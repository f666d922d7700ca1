"""The vocabulary of user feedback: every kind of signal a simulated user can send, in one table.

Each signal is one row of the table :data:`SIGNALS`: its name, value range, whether it is binary, its
neutral value, its unit and its :class:`Role` — what it says about the impression it belongs to. Every list
of signals elsewhere (feature columns, metrics, feedback strategies, the rounding of ratings) is derived from
the roles (:meth:`SignalTable.with_role`), never written out by name, so a new signal is one row: a built-in
one here (a member of :class:`Signal` and a row of :data:`BUILT_IN`), your own with :func:`register_signal`.

A signal is *explicit* when the user spends effort to state an opinion (a rating, a written text) and
*implicit* when the user emits it by behaving (click, dwell, skip).

>>> SIGNALS.with_role(Role.DEPTH)
(<Signal.DWELL_SECONDS: 1>, <Signal.LISTEN_FRACTION: 7>, <Signal.WATCH_FRACTION: 10>)
>>> SIGNALS.parse("rating"), SIGNALS.info(Signal.RATING).explicit
(<Signal.RATING: 12>, True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import NamedTuple

import numpy as np


class Signal(IntEnum):
    """The built-in kinds of feedback; the integer is the ``kind`` field of a feedback record."""

    CLICK = 0
    DWELL_SECONDS = 1
    SHARE = 2
    ADD_TO_CART = 3
    PURCHASE = 4
    PURCHASE_AMOUNT = 5
    PLAY = 6
    LISTEN_FRACTION = 7
    SKIP = 8
    LIKE = 9
    WATCH_FRACTION = 10
    COMPLETION = 11
    RATING = 12
    REVIEW = 13
    COMMENT = 14

    @property
    def label(self) -> str:
        """The lowercase name used in configs and feature names (``"dwell_seconds"``)."""
        return self.name.lower()


class Role(Enum):
    """What a signal says about the impression it belongs to."""

    CONSUMPTION = "consumption"  # the user took the item (click, play): every consumption sends one
    DEPTH = "depth"  # how much of it was consumed (seconds, or a fraction of its length)
    ACTION = "action"  # a binary act on the consumed item (share, like, cart, purchase, ...)
    AMOUNT = "amount"  # money spent on it
    RATING = "rating"  # stated stars
    TEXT = "text"  # a written opinion (review, comment) whose tone matches the rating


EXPLICIT_ROLES = frozenset({Role.RATING, Role.TEXT})
"""Roles of explicit feedback: the user states an opinion."""
UNITS = ("", "seconds", "fraction", "stars", "EUR")


@dataclass(frozen=True)
class SignalInfo:
    """One row of the signal table.

    Attributes:
        name: lowercase name used in configs (``reward_weights``, ``delays``) and feature names.
        role: what the signal says (:class:`Role`).
        low, high: the declared value range: a private report clips its value into it before adding noise
            (:mod:`envs.privacy`), so it should fit what the domains produce.
        binary: True when the value is 0 or 1.
        neutral: the value that carries no reward (3 stars for a rating, else 0).
        unit: what a value measures: one of :data:`UNITS` (``""`` for binary signals).
        resolution: values are multiples of it (1 for whole stars), or 0 for continuous values.
    """

    name: str
    role: Role
    low: float = 0.0
    high: float = 1.0
    binary: bool = True
    neutral: float = 0.0
    unit: str = ""
    resolution: float = 0.0

    def __post_init__(self) -> None:
        if not (self.name.isidentifier() and self.name == self.name.lower()):
            raise ValueError(f"signal name {self.name!r}; expected a lowercase identifier such as 'dwell_seconds'")
        if not isinstance(self.role, Role):
            raise ValueError(f"signal {self.name!r}: role={self.role!r}; expected one of {[r.name for r in Role]}")
        if not self.low <= self.neutral <= self.high or not self.low < self.high:
            raise ValueError(
                f"signal {self.name!r}: low={self.low}, neutral={self.neutral}, high={self.high}; "
                "expected low <= neutral <= high and low < high"
            )
        if self.unit not in UNITS:
            raise ValueError(f"signal {self.name!r}: unit={self.unit!r}; expected one of {UNITS}")
        if not self.resolution >= 0:
            raise ValueError(f"signal {self.name!r}: resolution={self.resolution!r}; expected a number >= 0")

    @property
    def explicit(self) -> bool:
        return self.role in EXPLICIT_ROLES


BUILT_IN = (
    SignalInfo("click", Role.CONSUMPTION),
    SignalInfo("dwell_seconds", Role.DEPTH, 0.0, 1250.0, binary=False, unit="seconds"),  # 5,000 words at 4/s
    SignalInfo("share", Role.ACTION),
    SignalInfo("add_to_cart", Role.ACTION),
    SignalInfo("purchase", Role.ACTION),
    SignalInfo("purchase_amount", Role.AMOUNT, 0.0, 3000.0, binary=False, unit="EUR"),  # 3 of the dearest items
    SignalInfo("play", Role.CONSUMPTION),
    SignalInfo("listen_fraction", Role.DEPTH, binary=False, unit="fraction"),
    SignalInfo("skip", Role.ACTION),
    SignalInfo("like", Role.ACTION),
    SignalInfo("watch_fraction", Role.DEPTH, binary=False, unit="fraction"),
    SignalInfo("completion", Role.ACTION),
    SignalInfo("rating", Role.RATING, 1.0, 5.0, binary=False, neutral=3.0, unit="stars", resolution=1.0),
    SignalInfo("review", Role.TEXT),
    SignalInfo("comment", Role.TEXT),
)
"""The rows of the built-in signals, in :class:`Signal` order."""

REWARD_SIGNALS = ("all", "explicit", "implicit")
"""Which signals may carry reward (see :meth:`SignalTable.reward_mask`): a feedback strategy's choice."""


class SignalTable:
    """The signals this process knows: the built-in ones, then those registered, a kind (row) each.

    The per-kind arrays (``(count,)`` each) are what compiled code and vectorised features read; an
    environment or agent takes them when it is built, so register signals before building those that
    use them.

    Attributes:
        count: number of kinds.
        binary, explicit: ``(count,)`` bool.
        low, high, neutral, resolution: ``(count,)`` float32.
    """

    def __init__(self, rows: tuple[SignalInfo, ...]) -> None:
        self._rows: list[SignalInfo] = []
        for row in rows:
            self.register(row)

    def register(self, info: SignalInfo) -> int:
        """Add a signal; returns its kind. A name already taken by another row is refused."""
        if not isinstance(info, SignalInfo):
            raise TypeError(f"register_signal({info!r}); expected an envs.signals.SignalInfo")
        for kind, row in enumerate(self._rows):
            if row.name == info.name:
                if row == info:
                    return kind
                raise ValueError(f"signal {info.name!r} is already registered as {row}; expected a new name")
        self._rows.append(info)
        self._refresh()
        return len(self._rows) - 1

    def _refresh(self) -> None:
        rows = self._rows
        self.count = len(rows)
        self.binary = np.array([r.binary for r in rows])
        self.explicit = np.array([r.explicit for r in rows])
        self.low = np.array([r.low for r in rows], np.float32)
        self.high = np.array([r.high for r in rows], np.float32)
        self.neutral = np.array([r.neutral for r in rows], np.float32)
        self.resolution = np.array([r.resolution for r in rows], np.float32)

    def info(self, kind: int) -> SignalInfo:
        return self._rows[kind]

    def name(self, kind: int) -> str:
        return self._rows[kind].name

    def kind(self, kind: int) -> int:
        """``kind`` as a :class:`Signal` when it is a built-in one (readable in reprs), else as an int."""
        return Signal(kind) if kind < len(Signal) else int(kind)

    def parse(self, name: str | int) -> int:
        """The kind of ``name`` (``"rating"``, ``"RATING"``, ``12``, ``Signal.RATING``)."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and 0 <= int(name) < self.count:
            return self.kind(int(name))
        if isinstance(name, str):
            for kind, row in enumerate(self._rows):
                if row.name == name.lower():
                    return self.kind(kind)
        valid = ", ".join(r.name for r in self._rows)
        raise ValueError(f"unknown feedback signal {name!r}; expected one of: {valid}")

    def with_role(self, *roles: Role) -> tuple[int, ...]:
        """The kinds whose role is one of ``roles``, in kind order."""
        return tuple(self.kind(k) for k, row in enumerate(self._rows) if row.role in roles)

    def reward_mask(self, which: str) -> np.ndarray:
        """``(count,)`` bool: the signals a reward restricted to ``which`` (a :data:`REWARD_SIGNALS` value)
        may count."""
        if which not in REWARD_SIGNALS:
            raise ValueError(f"reward_signals={which!r}; expected one of {REWARD_SIGNALS}")
        if which == "all":
            return np.ones(self.count, bool)
        return self.explicit == (which == "explicit")


SIGNALS = SignalTable(BUILT_IN)
"""The process-wide signal table."""
register_signal = SIGNALS.register

MAX_RATING_VALUES = 101
"""The most star values a rating scale may have (each is a category of the private rating report)."""


class RatingScale(NamedTuple):
    """The stars a world's users rate with: ``low``, ``low + step``, ..., ``high``.

    The generated domains rate on the rating signal's own row (1 to 5 whole stars, :meth:`of_signal`); a world
    fitted to half-star data rates in half stars (MovieLens: 0.5 to 5 in steps of 0.5). The kernel's ratings, the
    private rating report (one category per star value) and the tone of review text all follow the world's scale.
    """

    low: float
    high: float
    step: float

    @classmethod
    def of_signal(cls) -> RatingScale:
        """The rating row's range and resolution: 1 to 5 whole stars."""
        row = SIGNALS.info(Signal.RATING)
        return cls(float(row.low), float(row.high), float(row.resolution))

    @classmethod
    def parse(cls, value: object, name: str = "rating_scale") -> RatingScale:
        """``value`` ``(low, high, step)`` as a scale; refused, naming ``name`` and the value, unless low < high,
        step > 0 and ``(high - low) / step`` is a whole number of at most :data:`MAX_RATING_VALUES` - 1 steps."""
        expected = "(low, high, step) with low < high, step > 0 and (high - low) / step a whole number"
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
            raise ValueError(f"{name}={value!r}; expected {expected}")
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise ValueError(f"{name}={value!r}; expected three finite numbers {expected}")
        low, high, step = (float(v) for v in value)
        steps = (high - low) / step if step > 0 else -1.0
        if not (low < high and step > 0 and abs(steps - round(steps)) < 1e-9 and steps < MAX_RATING_VALUES):
            raise ValueError(f"{name}={value!r}; expected {expected} (at most {MAX_RATING_VALUES} star values)")
        return cls(low, high, step)

    @property
    def values(self) -> int:
        """How many star values the scale has (5 for 1..5 whole stars, 10 for 0.5..5 in half stars)."""
        return round((self.high - self.low) / self.step) + 1

    def stars(self) -> np.ndarray:
        """``(values,)`` float64 the star values, lowest first."""
        return self.low + self.step * np.arange(self.values)
