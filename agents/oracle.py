"""The ceiling: an agent that reads each user's hidden utility and shows the best ``k`` items."""

from __future__ import annotations

import numpy as np

from agents.base import Agent, top_k


class OracleAgent(Agent):
    """Ranks candidates by the simulator's hidden utility (``candidate_utility()``) — not a real
    recommender, the upper reference of ``normalized_score``. It must be attached to the environment it
    serves."""

    def attach(self, env) -> None:
        self._env = env.unwrapped

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        if not hasattr(self, "_env"):
            raise RuntimeError("OracleAgent.act called before attach(env): it needs the env's hidden utility")
        utility = np.atleast_2d(self._env.candidate_utility())
        if not np.array_equal(np.atleast_2d(obs["candidates"]), self._env.sim.candidates):
            raise RuntimeError("OracleAgent got an observation that is not its attached env's current one")
        return top_k(utility, self.task.slate_size)
