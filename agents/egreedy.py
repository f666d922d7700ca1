"""ε-greedy over per-item value estimates learned from arrived feedback."""

from __future__ import annotations

import numpy as np

from agents.base import Task
from agents.popularity import PopularityAgent


class EpsilonGreedyAgent(PopularityAgent):
    """Ranks candidates by each item's estimated reward per impression; with probability ``epsilon`` a
    session is shown a uniformly random slate instead (only while training: ``explore=True``).

    The estimate shrinks an item's mean toward the catalogue-wide mean with ``prior_strength``
    pseudo-impressions, ``(earned + c * global) / (shows + c)``, so unshown items sit at the global
    mean rather than at 0. Impressions count at once and credit when it arrives, so delayed feedback
    lowers fresh estimates until it lands.

    Args:
        epsilon: exploration probability per session and step, in [0, 1].
        prior_strength: ``c``, pseudo-impressions at the global mean, >= 0.
    """

    def __init__(self, task: Task, seed: int = 0, epsilon: float = 0.1, prior_strength: float = 1.0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon={epsilon!r}; expected a probability in [0, 1]")
        if not prior_strength >= 0.0:
            raise ValueError(f"prior_strength={prior_strength!r}; expected a number >= 0")
        super().__init__(task, seed)
        self.epsilon, self.prior_strength = epsilon, prior_strength

    def hyperparameters(self) -> dict:
        return {"epsilon": self.epsilon, "prior_strength": self.prior_strength}

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        """``(B, M)`` value estimates; rows chosen for exploration get uniform random scores."""
        items = obs["candidates"]
        overall = self.earned.sum() / max(self.shows.sum(), 1)
        c = self.prior_strength
        value = (self.earned[items] + c * overall) / np.maximum(self.shows[items] + c, 1e-12)
        if explore:
            rows = self.rng.random(len(items)) < self.epsilon
            value[rows] = self.rng.random((int(rows.sum()), items.shape[1]))
        return value
