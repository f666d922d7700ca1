"""The batched Gymnasium face of the simulator: ``num_envs`` sessions stepped by numpy at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.actions import check_slates
from envs.catalog import Catalog
from envs.domain import Domain
from envs.feedback import EMPTY_FEEDBACK
from envs.pool import EMPTY_PUBLISHED, Published
from envs.users import Population
from envs.world import make_simulator, start_tick


class Delivered(NamedTuple):
    """The feedback records (:data:`envs.feedback.FEEDBACK_DTYPE`, ``env_index`` says to whom) the last reset or
    step delivered.

    Attributes:
        arrived: delivered to the running sessions; their reward is in this step's reward.
        released: records that waited for the users whose new session started (their earlier session had ended);
            they are in the new session's first observation and their reward is paid in its first step.
    """

    arrived: np.ndarray
    released: np.ndarray


class SlateVectorEnv(VectorEnv):
    """``num_envs`` independent sessions of one world, each with the single env's spaces (arguments as
    :class:`envs.slate_env.SlateEnv`'s, plus ``num_envs`` and ``max_episode_steps``).

    Same-step autoreset (Gymnasium's ``AutoresetMode.SAME_STEP``, as in Stable-Baselines3): when a
    session ends, the returned observation is already the next session's first one; the last one is in
    ``info["final_obs"]``.

    ``info`` follows Gymnasium's vector convention (every value has one entry per sub-env, so
    ``gymnasium.wrappers.vector.DictInfoToList`` and ``RecordEpisodeStatistics`` work): ``utility`` ``(N, k)``
    hidden utility of the shown items, ``masked_positions`` ``(N, k)`` bool, ``impression_id`` ``(N,)``,
    ``choice`` ``(N,)`` slot consumed (-1: none), ``feedback_count`` ``(N,)`` records delivered to each sub-env
    (arrived and released), and where sessions ended ``final_obs`` ``(N,)`` (object: sub-env ``i``'s last
    observation, a mapping like an observation of one session, where ``_final_obs[i]``). The records themselves
    vary in number per sub-env, so they are read from :attr:`delivered`; the world's pending count is
    :attr:`pending_feedback`.

    In a world with item churn (``publish_rate > 0``, :mod:`envs.pool`), the items published since the last step or
    reset are :attr:`published` (a :class:`envs.pool.Published`: slots, ids, texts; empty when none) and, when there
    are any, ``info["published"]`` ``(N,)`` (object: every entry the same :class:`~envs.pool.Published`, the world
    being shared, with ``_published`` all True); :attr:`catalog` shows each slot's current item.
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
        self.delivered = Delivered(EMPTY_FEEDBACK, EMPTY_FEEDBACK)
        self.published: Published = EMPTY_PUBLISHED

    @property
    def catalog(self) -> Catalog:
        """The catalogue view: each slot's current item."""
        return self.sim.catalog

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
            self.sim.reset_world(start_tick(options))
        elif options:
            raise ValueError(f"reset(options={options!r}) without a seed; expected options only with a seed")
        self.delivered = Delivered(EMPTY_FEEDBACK, self.sim.start_sessions(self._all, self.np_random))
        info = {"feedback_count": self._counts()}
        self._tell_published(info)
        return self.sim.observation(), info

    def step(self, actions):
        slates = check_slates(actions, self.config.num_candidates, self.config.slate_size, self.num_envs)
        out = self.sim.step(slates, self.np_random)
        done = out.terminated | out.truncated
        info: dict[str, Any] = {
            "utility": out.utility,
            "masked_positions": out.masked,
            "impression_id": out.impression_id,
            "choice": out.choice,
        }
        ended = np.flatnonzero(done)
        released = EMPTY_FEEDBACK
        if len(ended):
            info["final_obs"] = final_observations(self.sim.observation(ended), ended, self.num_envs)
            info["_final_obs"] = done
            released = self.sim.start_sessions(ended, self.np_random)
        self.delivered = Delivered(out.feedback, released)
        info["feedback_count"] = self._counts()
        self._tell_published(info)
        return self.sim.observation(), out.reward, out.terminated, out.truncated, info

    def _tell_published(self, info: dict[str, Any]) -> None:
        """:attr:`published` from the simulator and, when it lists items, ``info["published"]`` with its mask."""
        self.published = self.sim.take_published()
        if len(self.published.items):
            every = np.empty(self.num_envs, object)
            every.fill(self.published)
            info["published"], info["_published"] = every, np.ones(self.num_envs, bool)

    @property
    def eventual_feedback(self) -> np.ndarray:
        """Every record the last step's impressions will ever send, as generated before the channel delayed them
        (``step_arrived`` not yet set): a simulator privilege for the ``oracle`` label strategy and the streaming
        evaluation's eventual labels, never for agents' observations. A read-only view, valid until the next step."""
        return _read_only(self.sim.step_records)

    @property
    def pending_feedback(self) -> int:
        """Records of the whole world submitted and not yet delivered."""
        return self.sim.channel.pending

    def _counts(self) -> np.ndarray:
        """``(N,)`` records :attr:`delivered` to each sub-env."""
        arrived, released = self.delivered
        counts = np.bincount(arrived["env_index"], minlength=self.num_envs)
        return counts + np.bincount(released["env_index"], minlength=self.num_envs) if len(released) else counts

    def state_dict(self) -> dict[str, Any]:
        """The simulator's state and the random generator's, enough to continue this environment exactly where it
        is (see :meth:`load_state_dict`)."""
        return {"simulator": self.sim.state_dict(), "rng": {"bit_generator": self.np_random.bit_generator.state}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; the observation to act on is :meth:`observation`."""
        self.sim.load_state_dict(state["simulator"])
        self.np_random.bit_generator.state = state["rng"]["bit_generator"]
        self.delivered = Delivered(EMPTY_FEEDBACK, EMPTY_FEEDBACK)
        self.published = EMPTY_PUBLISHED

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (after :meth:`load_state_dict`, the one to act on)."""
        return self.sim.observation()

    def candidate_utility(self) -> np.ndarray:
        """``(N, M)`` hidden utility of the current candidates (for the oracle and metrics only)."""
        return self.sim.candidate_utility()


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def final_observations(rows: dict[str, np.ndarray], envs: np.ndarray, num_envs: int) -> np.ndarray:
    """``info["final_obs"]``: an object array ``(num_envs,)`` holding, at each ended sub-env ``envs[r]``, its last
    observation (an :class:`ObservationRow` of the compact ``rows``, ``(n, ...)`` per key), None elsewhere."""
    final = np.empty(num_envs, object)
    final[envs] = [ObservationRow(rows, r) for r in range(len(envs))]
    return final


class ObservationRow(Mapping):
    """One session's observation as a read-only mapping, row ``index`` of the batched ``rows`` (no copy: every
    ended session of a step shares them, so an adapter can take ``rows`` whole)."""

    __slots__ = ("index", "rows")

    def __init__(self, rows: dict[str, np.ndarray], index: int) -> None:
        self.rows, self.index = rows, index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.rows[key][self.index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)
