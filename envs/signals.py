"""The vocabulary of user feedback: every kind of signal a simulated user can send, in one table.

Each signal is one row of :data:`SIGNAL_INFO`: its value range, whether it is binary, its neutral value
and its :class:`Role` — what it says about the impression it belongs to. Every list of signals elsewhere
(feature columns, metrics, feedback strategies, the rounding of ratings) is derived from the roles with
:func:`signals_with`, never written out by name, so a new signal is one row here.

A signal is *explicit* when the user spends effort to state an opinion (a rating, a written text) and
*implicit* when the user emits it by behaving (click, dwell, skip).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

import numpy as np


class Signal(IntEnum):
    """Kinds of feedback events; the integer is the ``kind`` field of a feedback record."""

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

    @classmethod
    def parse(cls, name: str | int | Signal) -> Signal:
        """``"rating"``, ``"RATING"``, ``12`` or ``Signal.RATING`` → ``Signal.RATING``."""
        if isinstance(name, Signal):
            return name
        if isinstance(name, (int, np.integer)) and int(name) in cls._value2member_map_:
            return cls(int(name))
        if isinstance(name, str) and name.upper() in cls.__members__:
            return cls[name.upper()]
        valid = ", ".join(s.name.lower() for s in cls)
        raise ValueError(f"unknown feedback signal {name!r}; expected one of: {valid}")

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


@dataclass(frozen=True)
class SignalInfo:
    """Static facts about one signal kind.

    Attributes:
        role: what the signal says (:class:`Role`).
        low, high: the value range (privacy noise is applied to values clipped into it).
        binary: True when the value is 0 or 1.
        neutral: the value that carries no reward (3 stars for a rating, else 0).
        unit: what a value measures: ``"seconds"``, ``"fraction"``, ``"stars"``, ``"EUR"``, or ``""`` for binary.
        resolution: values are multiples of it (1 for whole stars), or 0 for continuous values.
    """

    role: Role
    low: float = 0.0
    high: float = 1.0
    binary: bool = True
    neutral: float = 0.0
    unit: str = ""
    resolution: float = 0.0

    @property
    def explicit(self) -> bool:
        return self.role in EXPLICIT_ROLES


SIGNAL_INFO: dict[Signal, SignalInfo] = {
    Signal.CLICK: SignalInfo(Role.CONSUMPTION),
    Signal.DWELL_SECONDS: SignalInfo(Role.DEPTH, 0.0, 3600.0, binary=False, unit="seconds"),
    Signal.SHARE: SignalInfo(Role.ACTION),
    Signal.ADD_TO_CART: SignalInfo(Role.ACTION),
    Signal.PURCHASE: SignalInfo(Role.ACTION),
    Signal.PURCHASE_AMOUNT: SignalInfo(Role.AMOUNT, 0.0, 10_000.0, binary=False, unit="EUR"),
    Signal.PLAY: SignalInfo(Role.CONSUMPTION),
    Signal.LISTEN_FRACTION: SignalInfo(Role.DEPTH, binary=False, unit="fraction"),
    Signal.SKIP: SignalInfo(Role.ACTION),
    Signal.LIKE: SignalInfo(Role.ACTION),
    Signal.WATCH_FRACTION: SignalInfo(Role.DEPTH, binary=False, unit="fraction"),
    Signal.COMPLETION: SignalInfo(Role.ACTION),
    Signal.RATING: SignalInfo(Role.RATING, 1.0, 5.0, binary=False, neutral=3.0, unit="stars", resolution=1.0),
    Signal.REVIEW: SignalInfo(Role.TEXT),
    Signal.COMMENT: SignalInfo(Role.TEXT),
}


def signals_with(*roles: Role) -> tuple[Signal, ...]:
    """The signals whose role is one of ``roles``, in :class:`Signal` order."""
    return tuple(s for s in Signal if SIGNAL_INFO[s].role in roles)


REWARD_SIGNALS = ("all", "explicit", "implicit")
"""Which signals may carry reward (see :func:`reward_mask`): a feedback strategy's choice."""


def reward_mask(which: str) -> np.ndarray:
    """``(NUM_SIGNALS,)`` bool: the signals a reward restricted to ``which`` (a :data:`REWARD_SIGNALS`
    value) may count."""
    if which not in REWARD_SIGNALS:
        raise ValueError(f"reward_signals={which!r}; expected one of {REWARD_SIGNALS}")
    if which == "all":
        return np.ones(NUM_SIGNALS, bool)
    return IS_EXPLICIT == (which == "explicit")


NUM_SIGNALS = len(Signal)
IS_EXPLICIT = np.array([SIGNAL_INFO[s].explicit for s in Signal])
IS_BINARY = np.array([SIGNAL_INFO[s].binary for s in Signal])
VALUE_LOW = np.array([SIGNAL_INFO[s].low for s in Signal], dtype=np.float32)
VALUE_HIGH = np.array([SIGNAL_INFO[s].high for s in Signal], dtype=np.float32)
VALUE_NEUTRAL = np.array([SIGNAL_INFO[s].neutral for s in Signal], dtype=np.float32)
VALUE_RESOLUTION = np.array([SIGNAL_INFO[s].resolution for s in Signal], dtype=np.float32)

CONSUMPTION = signals_with(Role.CONSUMPTION)
DEPTH = signals_with(Role.DEPTH)
ACTIONS = signals_with(Role.ACTION)
AMOUNT = signals_with(Role.AMOUNT)
