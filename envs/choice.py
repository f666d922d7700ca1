"""Choice models: which slate position (if any) a user picks, for a batch of users at once.

Every model maps utilities ``(B, k)`` (``-inf`` marks an empty slot), each user's no-click utility
``(B,)`` and click temperature ``(B,)`` to the chosen position ``(B,)`` int64, ``-1`` for no click.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class ChoiceModel(Protocol):
    def choose(
        self, utility: np.ndarray, no_click: np.ndarray, temperature: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class MultinomialLogit:
    """Softmax over the slate plus a no-click option: ``P(j) ∝ exp(u_j / τ)``, ``P(none) ∝ exp(u_0 / τ)``.

    Sampled exactly with the Gumbel-max trick. Position does not matter.
    """

    def choose(self, utility, no_click, temperature, rng):
        logits = np.concatenate([utility, no_click[:, None]], axis=1) / temperature[:, None]
        logits -= np.log(-np.log(rng.random(logits.shape, dtype=np.float32)))
        choice = logits.argmax(axis=1)
        return np.where(choice == utility.shape[1], -1, choice)


@dataclass(frozen=True)
class Cascade:
    """Top-down scan with position bias: slot ``j`` is examined with probability ``position_bias ** j``
    and clicked if attractive (``P = sigmoid((u_j - u_0) / τ)``); the user takes the first click."""

    position_bias: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 < self.position_bias <= 1.0:
            raise ValueError(f"position_bias must be in (0, 1], got {self.position_bias!r}")

    def choose(self, utility, no_click, temperature, rng):
        examine = self.position_bias ** np.arange(utility.shape[1], dtype=np.float32)
        attractive = 1.0 / (1.0 + np.exp((no_click[:, None] - utility) / temperature[:, None]))
        clicked = rng.random(utility.shape, dtype=np.float32) < examine * attractive
        return np.where(clicked.any(axis=1), clicked.argmax(axis=1), -1)


CHOICE_MODELS = {"mnl": MultinomialLogit, "cascade": Cascade}


def make_choice_model(name: str, position_bias: float = 0.8) -> ChoiceModel:
    """``"mnl"`` (multinomial logit with no-click) or ``"cascade"`` (position-biased scan)."""
    if name == "mnl":
        return MultinomialLogit()
    if name == "cascade":
        return Cascade(position_bias)
    raise ValueError(f"unknown choice_model {name!r}; expected one of {sorted(CHOICE_MODELS)}")
