"""Uniformly random slates of distinct candidates: the floor every result is normalised against."""

from __future__ import annotations

import numpy as np

from agents.base import Agent, top_k


class RandomAgent(Agent):
    """Shows ``k`` distinct candidates drawn uniformly at random. Training draws come from its seeded
    generator (saved in checkpoints); evaluation draws (``explore=False``) from a second generator that
    restarts from the seed whenever the agent is attached to an environment, so on the same evaluation
    seed it reproduces the random floor of ``normalized_score`` exactly (score 0)."""

    def __init__(self, task, seed: int = 0) -> None:
        super().__init__(task, seed)
        self.seed = seed
        self._evaluation_rng = np.random.default_rng(seed)

    def attach(self, env) -> None:
        self._evaluation_rng = np.random.default_rng(self.seed)

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        batch = obs["candidates"].shape[0]
        rng = self.rng if explore else self._evaluation_rng
        return top_k(rng.random((batch, self.task.num_candidates)), self.task.slate_size)
