"""Linear Thompson sampling: act greedily on a draw from the posterior of :mod:`agents.linear`'s model."""

from __future__ import annotations

import numpy as np

from agents.base import Task
from agents.linear import LinearBandit


class ThompsonAgent(LinearBandit):
    """Each session scores candidates with its own draw ``θ̃ ~ N(θ, s² A⁻¹)`` (Agrawal & Goyal, 2013)
    and shows the top ``k``; the posterior mean ``θ`` when ``explore=False``. Draws come from the
    agent's seeded generator.

    Args:
        scale: ``s`` >= 0, the posterior's standard-deviation multiplier (0 is the greedy recommender).
        ridge, label, feedback_window, update_every: see :class:`~agents.linear.LinearBandit`.
    """

    def __init__(self, task: Task, seed: int = 0, scale: float = 0.5, **model) -> None:
        if not scale >= 0:
            raise ValueError(f"scale={scale!r}; expected a number >= 0")
        super().__init__(task, seed, **model)
        self.scale = scale

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "scale": self.scale}

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        x = self.candidates(obs)
        if not explore:
            return x.dot(self.theta)
        root = np.linalg.cholesky(self.covariance)
        draws = self.theta + self.scale * self.rng.standard_normal((len(x.items), len(self.theta))) @ root.T
        return x.dot(draws)
