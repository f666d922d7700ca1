"""The ceiling: an agent that knows the simulator's hidden state and shows, each step, the slate of greatest
expected reward.

It optimises one step at a time (myopic): given each candidate's hidden utility and the expected reward of its
consumption (:meth:`envs.simulator.Simulator.choice_problem`), it solves for the slate that maximises the
expected reward of this step under the known choice model (:mod:`agents.assortment`: exact under the
multinomial logit, a local optimum of exchanges under the cascade), leaving slots empty where a poor item would
take clicks from a better one. It ignores what a slate does to the user's later state (fatigue, mood, drift),
so a far-sighted policy could in principle earn more over a session; no per-step policy can.
"""

from __future__ import annotations

import numpy as np

from agents.assortment import EMPTY, best_cascade_slates, best_mnl_slates, cascade_value, mnl_value
from agents.base import Agent


class OracleAgent(Agent):
    """Shows the per-step best slate by the hidden state; the upper reference of ``normalized_score``. It must be
    attached to the environment it serves."""

    def attach(self, env) -> None:
        self._env = env.unwrapped

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        if not hasattr(self, "_env"):
            raise RuntimeError("OracleAgent.act called before attach(env): it needs the env's hidden state")
        sim = self._env.sim
        if not np.array_equal(np.atleast_2d(obs["candidates"]), sim.candidates):
            raise RuntimeError("OracleAgent got an observation that is not its attached env's current one")
        problem = sim.choice_problem()
        return fill_empty(best_slates(problem, self.task.slate_size), problem.reward)


def best_slates(problem, k: int) -> np.ndarray:
    """Slates ``(B, k)`` (:data:`~agents.assortment.EMPTY` for empty slots) of greatest expected reward for a
    :class:`envs.simulator.ChoiceProblem`."""
    u, u0, tau = problem.utility, problem.no_click[:, None], problem.temperature[:, None]
    if problem.choice_model == "cascade":
        attraction = 1.0 / (1.0 + np.exp(-(u - u0) / tau))
        return best_cascade_slates(
            attraction, problem.reward, k, problem.position_bias, problem.misclick_rate, problem.may_mask
        )
    top = np.maximum(u.max(1, keepdims=True), u0)  # weights relative to the largest, for stable exponentials
    weight, no_click = np.exp((u - top) / tau), np.exp((u0 - top) / tau)[:, 0]
    return best_mnl_slates(weight, no_click, problem.reward, k, problem.misclick_rate, problem.may_mask)


def slate_values(problem, slates: np.ndarray) -> np.ndarray:
    """``(B,)`` expected reward of this step's ``slates`` ``(B, k)`` (candidate indices; a repeated one shows
    nothing) for a :class:`envs.simulator.ChoiceProblem`."""
    k = slates.shape[1]
    repeated = (slates[:, :, None] == slates[:, None, :]) & np.tri(k, k, -1, bool)[None]
    shown = np.where(repeated.any(2), EMPTY, slates)
    u, u0, tau = problem.utility, problem.no_click[:, None], problem.temperature[:, None]
    if problem.choice_model == "cascade":
        attraction = 1.0 / (1.0 + np.exp(-(u - u0) / tau))
        return cascade_value(shown, attraction, problem.reward, problem.position_bias, problem.misclick_rate)
    top = np.maximum(u.max(1, keepdims=True), u0)
    weight, no_click = np.exp((u - top) / tau), np.exp((u0 - top) / tau)[:, 0]
    return mnl_value(shown, weight, no_click, problem.reward, k, problem.misclick_rate)


def regret(problem, slates: np.ndarray) -> np.ndarray:
    """``(B,)`` expected reward the per-step best slate earns beyond ``slates`` ``(B, k)`` (0 for the oracle's)."""
    best = fill_empty(best_slates(problem, slates.shape[1]), problem.reward)
    return slate_values(problem, best) - slate_values(problem, slates)


def fill_empty(slates: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Slates ``(B, k)`` with each :data:`~agents.assortment.EMPTY` slot repeating the slate's first item, which
    the environment shows as nothing (``duplicates="mask"``). The environment needs one real slot: a slate left
    wholly empty shows the candidate of greatest expected ``reward`` ``(B, M)`` once."""
    first = np.where(slates[:, 0] >= 0, slates[:, 0], reward.argmax(1))
    return np.where(slates >= 0, slates, first[:, None]).astype(np.int64)
