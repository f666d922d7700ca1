"""Our batched environment seen through Stable-Baselines3's ``VecEnv`` API.

Both sides use same-step autoreset: when a session ends, the returned observation is already the next
session's. The last one moves from ``info["final_obs"]`` to ``infos[i]["terminal_observation"]``, and
``infos[i]["TimeLimit.truncated"]`` says whether SB3 should bootstrap from it (time limit, not the user
leaving). Observations gain ``user_context`` ``(3d,)`` (:mod:`agents.context`), whose engagement
profiles learn from the feedback that arrives; actions are decoded into slates by a
:mod:`agents.slate_actions` decoder.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from agents.base import Transition
from agents.context import UserContext
from agents.credit import record_credit, signal_weights


def with_context(obs: dict[str, np.ndarray], context: UserContext) -> dict[str, np.ndarray]:
    """``obs`` (arrays ``(B, ...)``) plus ``user_context`` ``(B, 3d)``."""
    return {**obs, "user_context": context.describe(obs)}


class SB3VecEnv(VecEnv):
    """Adapts a :class:`envs.SlateVectorEnv` (``num_envs`` sessions) to SB3.

    Args:
        env: the vector environment, already reset (or restored from a checkpoint).
        obs: its current observation, arrays ``(N, ...)``.
        decode: maps the policy's actions ``(N, ...)`` and the current observation to slates ``(N, k)``;
            its ``space`` is the action space SB3 sees.
        context: the user summary added to every observation.
    """

    def __init__(self, env, obs: dict[str, np.ndarray], decode, context: UserContext) -> None:
        self.env, self.decode, self.context = env, decode, context
        self.weights = signal_weights(env)
        observation_space = self.observation_space_of(env.single_observation_space, context)
        super().__init__(env.num_envs, observation_space, decode.space)
        self._obs, self._fresh = obs, True
        self._actions: np.ndarray | None = None

    @staticmethod
    def observation_space_of(single: spaces.Dict, context: UserContext) -> spaces.Dict:
        """What SB3 observes of one session: the environment's ``single`` space plus the user context."""
        return spaces.Dict({**single.spaces, "user_context": context.space})

    def reset(self) -> dict[str, np.ndarray]:
        """The current observation while the env has not stepped (SB3 resets at the start of ``learn``);
        later, a reset with the first seed set by :meth:`seed` (None: the world continues)."""
        if not self._fresh:
            self._obs, _ = self.env.reset(seed=self._seeds[0])
            self._reset_seeds()
        return with_context(self._obs, self.context)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        slates = self.decode(self._actions, self._obs)
        step = Transition.of(self.env, self._obs, slates, self.env.step(slates))
        obs, reward, info = step.next_obs, step.reward, step.info
        terminated, truncated = step.terminated, step.truncated
        records = step.arrived_feedback()
        self.context.remember(records, record_credit(records, self.weights))
        self._obs, self._fresh = obs, False
        infos = [{"TimeLimit.truncated": bool(t and not d)} for t, d in zip(truncated, terminated, strict=True)]
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            last = with_context(info["final_obs"][ended[0]].rows, self.context)  # every ended session's rows
            for row, i in enumerate(ended):
                infos[i]["terminal_observation"] = {key: value[row] for key, value in last.items()}
        return with_context(self._obs, self.context), reward.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list:
        """The batched env's attribute, once per requested sub-env (sessions share one world)."""
        return [getattr(self.env, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        raise NotImplementedError(
            f"env_method({method_name!r}): the sessions of a batched env share one object; call env.{method_name} once"
        )

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))
