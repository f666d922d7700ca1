"""LinUCB: the linear reward model of :mod:`agents.linear` plus an upper-confidence exploration bonus."""

from __future__ import annotations

import numpy as np

from agents.base import Task
from agents.linear import LinearBandit


class LinUCBAgent(LinearBandit):
    """Shows the ``k`` candidates with the highest ``x·θ + α √(xᵀ A⁻¹ x)`` (Li et al., 2010), one shared
    model over user-history × item features; greedy ``x·θ`` when ``explore=False``.

    Args:
        alpha: width of the confidence bonus, >= 0 (0 is the greedy ridge recommender).
        ridge, label, feedback_window, update_every: see :class:`~agents.linear.LinearBandit`.
    """

    def __init__(self, task: Task, seed: int = 0, alpha: float = 1.0, **model) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha={alpha!r}; expected a number >= 0")
        super().__init__(task, seed, **model)
        self.alpha = alpha

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "alpha": self.alpha}

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        x = self.candidates(obs)
        mean = x.dot(self.theta)
        if not explore:
            return mean
        spread = x.quadratic(self.covariance)  # xᵀ A⁻¹ x per candidate
        return mean + self.alpha * np.sqrt(np.maximum(spread, 0.0))
