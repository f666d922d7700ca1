"""The batched Gymnasium face of the simulator: ``num_envs`` sessions stepped by numpy at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.actions import check_slates
from envs.catalog import Catalog
from envs.domain import Domain
from envs.feedback import as_columns
from envs.users import Population
from envs.world import make_simulator


class SlateVectorEnv(VectorEnv):
    """``num_envs`` independent sessions of one world, each with the single env's spaces (arguments as
    :class:`envs.slate_env.SlateEnv`'s, plus ``num_envs`` and ``max_episode_steps``).

    Same-step autoreset (Gymnasium's ``AutoresetMode.SAME_STEP``, as in Stable-Baselines3): when a
    session ends, the returned observation is already the next session's first one; the last one is in
    ``info["final_obs"]`` (a :class:`FinalObservation`: rows masked by ``info["_final_obs"]``).

    ``info`` per step: ``feedback`` (columns of :data:`envs.feedback.FEEDBACK_DTYPE` for all sub-envs;
    ``env_index`` says whose),
    ``reset_feedback`` (records that waited for the users of sessions started this step), ``utility``
    ``(N, k)``, ``masked_positions`` ``(N, k)`` bool, ``impression_id`` ``(N,)``, ``choice`` ``(N,)``,
    ``pending_feedback`` (int, whole world).
    """

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        domain: str | Domain = "news",
        catalog: Catalog | None = None,
        item_features: str | np.ndarray | None = "meta",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        population: Population | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r}; expected an integer >= 1")
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}; the vector env does not render (expected None)")
        self.num_envs = int(num_envs)
        self.sim = make_simulator(domain, self.num_envs, kwargs, catalog, item_features, population, max_episode_steps)
        self.domain, self.config = self.sim.domain, self.sim.config
        self.single_observation_space = self.sim.observation_space
        self.single_action_space = self.sim.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._all = np.arange(self.num_envs)

    @property
    def catalog(self) -> Catalog:
        return self.sim.catalog

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
            self.sim.reset_world()
        waiting = self.sim.start_sessions(self._all, self.np_random)
        return self.sim.observation(), {"feedback": as_columns(waiting), "pending_feedback": self.sim.channel.pending}

    def step(self, actions):
        slates = check_slates(actions, self.config.num_candidates, self.config.slate_size, self.num_envs)
        out = self.sim.step(slates, self.np_random)
        done = out.terminated | out.truncated
        info: dict[str, Any] = {
            "feedback": as_columns(out.feedback),
            "utility": out.utility,
            "masked_positions": out.masked,
            "impression_id": out.impression_id,
            "choice": out.choice,
        }
        ended = np.flatnonzero(done)
        if len(ended):
            info["final_obs"] = FinalObservation(self.sim.observation(ended), ended, self.num_envs)
            info["_final_obs"] = done
            info["reset_feedback"] = as_columns(self.sim.start_sessions(ended, self.np_random))
        info["pending_feedback"] = self.sim.channel.pending
        return self.sim.observation(), out.reward, out.terminated, out.truncated, info

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """``(arrays, json_state)``: the simulator's arrays and the random generator's state, enough to
        continue this environment exactly where it is (see :meth:`load_state_dict`)."""
        return self.sim.state_dict(), {"bit_generator": self.np_random.bit_generator.state}

    def load_state_dict(self, arrays: dict[str, np.ndarray], json_state: dict) -> None:
        """Continue from a :meth:`state_dict`; the observation to act on is :meth:`observation`."""
        self.sim.load_state_dict(arrays)
        self.np_random.bit_generator.state = json_state["bit_generator"]

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (after :meth:`load_state_dict`, the one to act on)."""
        return self.sim.observation()

    def candidate_utility(self) -> np.ndarray:
        """``(N, M)`` hidden utility of the current candidates (for the oracle and metrics only)."""
        return self.sim.candidate_utility()


class FinalObservation(Mapping):
    """``info["final_obs"]``: the last observation of the sessions that ended this step.

    Read as a mapping it holds full ``(num_envs, ...)`` arrays, one per observation key, with the ended
    sub-envs' rows filled and the others zero, built on first access (most steps' are never read). The
    compact form is :attr:`rows` ``(n, ...)`` per key, row ``r`` belonging to sub-env ``envs[r]``.
    """

    def __init__(self, rows: dict[str, np.ndarray], envs: np.ndarray, num_envs: int) -> None:
        self.rows, self.envs, self.num_envs = rows, envs, num_envs
        self._full: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._full:
            rows = self.rows[key]
            self._full[key] = np.zeros((self.num_envs, *rows.shape[1:]), rows.dtype)
            self._full[key][self.envs] = rows
        return self._full[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)
