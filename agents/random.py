"""Uniformly random slates of distinct candidates: the floor every result is normalised against."""

from __future__ import annotations

import numpy as np

from agents.base import Agent, top_k


class RandomAgent(Agent):
    """Shows ``k`` distinct candidates drawn uniformly at random (seeded)."""

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        batch = obs["candidates"].shape[0]
        return top_k(self.rng.random((batch, self.task.num_candidates)), self.task.slate_size)
