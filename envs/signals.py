"""The vocabulary of user feedback: every kind of signal a simulated user can send.

A signal is *implicit* when the user emits it by behaving (click, dwell, skip) and *explicit* when the
user spends effort to state an opinion (rating, review). Binary signals take values in {0, 1}; numeric
signals have a documented range that privacy noise is clipped back into.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

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


@dataclass(frozen=True)
class SignalInfo:
    """Static facts about one signal kind.

    Attributes:
        explicit: True when the user states an opinion (rating, review, comment).
        binary: True when the value is 0 or 1.
        low, high: the value range; privacy noise is clipped back into it.
        neutral: the value that carries no reward (3 stars for a rating, else 0).
    """

    explicit: bool
    binary: bool
    low: float
    high: float
    neutral: float = 0.0


SIGNAL_INFO: dict[Signal, SignalInfo] = {
    Signal.CLICK: SignalInfo(False, True, 0.0, 1.0),
    Signal.DWELL_SECONDS: SignalInfo(False, False, 0.0, 3600.0),
    Signal.SHARE: SignalInfo(False, True, 0.0, 1.0),
    Signal.ADD_TO_CART: SignalInfo(False, True, 0.0, 1.0),
    Signal.PURCHASE: SignalInfo(False, True, 0.0, 1.0),
    Signal.PURCHASE_AMOUNT: SignalInfo(False, False, 0.0, 10_000.0),
    Signal.PLAY: SignalInfo(False, True, 0.0, 1.0),
    Signal.LISTEN_FRACTION: SignalInfo(False, False, 0.0, 1.0),
    Signal.SKIP: SignalInfo(False, True, 0.0, 1.0),
    Signal.LIKE: SignalInfo(False, True, 0.0, 1.0),
    Signal.WATCH_FRACTION: SignalInfo(False, False, 0.0, 1.0),
    Signal.COMPLETION: SignalInfo(False, True, 0.0, 1.0),
    Signal.RATING: SignalInfo(True, False, 1.0, 5.0, neutral=3.0),
    Signal.REVIEW: SignalInfo(True, True, 0.0, 1.0),
    Signal.COMMENT: SignalInfo(True, True, 0.0, 1.0),
}

NUM_SIGNALS = len(Signal)
IS_EXPLICIT = np.array([SIGNAL_INFO[s].explicit for s in Signal])
IS_BINARY = np.array([SIGNAL_INFO[s].binary for s in Signal])
VALUE_LOW = np.array([SIGNAL_INFO[s].low for s in Signal], dtype=np.float32)
VALUE_HIGH = np.array([SIGNAL_INFO[s].high for s in Signal], dtype=np.float32)
VALUE_NEUTRAL = np.array([SIGNAL_INFO[s].neutral for s in Signal], dtype=np.float32)
