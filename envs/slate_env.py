"""The single-session Gymnasium face of the simulator (the batched core with ``B = 1``), for every domain."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.actions import check_slates
from envs.catalog import Catalog
from envs.domain import Domain
from envs.feedback import as_columns
from envs.pool import EMPTY_PUBLISHED, Published
from envs.users import Population
from envs.world import make_simulator, start_tick

ONE = np.zeros(1, np.int64)


class SlateEnv(gym.Env):
    """One user at a time is shown slates of ``slate_size`` items out of ``num_candidates``.

    One class serves every domain, registered per domain as ``FeedbackRec/<Title>-v<n>`` with
    ``kwargs={"domain": name}``; each domain's manual is its module's docstring in :mod:`envs.domains`
    (e.g. ``help(envs.domains.news)``). Passing a seed to :meth:`reset` restarts the simulated world
    (population drift undone, pending feedback forgotten); ``reset()`` without a seed starts the next
    session in the same world, so users return with drifted interests and late feedback from their earlier
    sessions.

    In a world with item churn (``publish_rate > 0``, :mod:`envs.pool`), ``info["published"]`` (a
    :class:`envs.pool.Published`: slots, ids, texts) lists the items published since the last step or reset, present
    when there are any; :attr:`published` holds the last one (empty when none), and :attr:`catalog` shows each
    slot's current item.

    Args:
        domain: a registered domain's name (``"news"``, ...) or a :class:`~envs.domain.Domain`.
        catalog, item_features, population: see :class:`envs.simulator.Simulator`.
        render_mode: None or ``"ansi"`` (the candidates' texts).
        **kwargs: :class:`envs.config.SimConfig` fields, and a fitted world's own keywords.
    """

    metadata: ClassVar[dict] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        domain: str | Domain = "news",
        catalog: Catalog | None = None,
        item_features: str | np.ndarray | None = "meta",
        render_mode: str | None = None,
        population: Population | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r}; expected None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.sim = make_simulator(domain, 1, kwargs, catalog, item_features, population)
        self.domain, self.config = self.sim.domain, self.sim.config
        self.observation_space = self.sim.observation_space
        self.action_space = self.sim.action_space
        self.published: Published = EMPTY_PUBLISHED

    @property
    def catalog(self) -> Catalog:
        """The catalogue view: each slot's current item."""
        return self.sim.catalog

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.reset_world(start_tick(options))
        elif options:
            raise ValueError(f"reset(options={options!r}) without a seed; expected options only with a seed")
        waiting = self.sim.start_sessions(ONE, self.np_random)
        info = {
            "feedback": as_columns(waiting),
            "pending_feedback": self.sim.channel.pending,
            "user_id": int(self.sim.user[0]),
        }
        self._tell_published(info)
        return self._observation(), info

    def step(self, action):
        if self.sim.session[0] < 0:
            raise RuntimeError("the session has ended (terminated or truncated); call reset() before step()")
        slate = check_slates(action, self.config.num_candidates, self.config.slate_size, None)
        out = self.sim.step(slate, self.np_random)
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        if terminated or truncated:
            self.sim.end_sessions(ONE)
        info = {
            "feedback": as_columns(out.feedback),
            "utility": out.utility[0],
            "masked_positions": out.masked[0],
            "impression_id": int(out.impression_id[0]),
            "pending_feedback": self.sim.channel.pending,
            "choice": int(out.choice[0]),
        }
        self._tell_published(info)
        return self._observation(), float(out.reward[0]), terminated, truncated, info

    @property
    def eventual_feedback(self) -> np.ndarray:
        """Every record the last step's impression will ever send (see
        :attr:`envs.vector_env.SlateVectorEnv.eventual_feedback`): a read-only view, valid until the next step."""
        view = self.sim.step_records.view()
        view.flags.writeable = False
        return view

    def _tell_published(self, info: dict) -> None:
        """Put the items published since the last call into ``info["published"]`` (when there are any) and
        :attr:`published`."""
        self.published = self.sim.take_published()
        if len(self.published.items):
            info["published"] = self.published

    def candidate_utility(self) -> np.ndarray:
        """``(M,)`` hidden utility of the current candidates (for the oracle and metrics only)."""
        return self.sim.candidate_utility()[0]

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        texts = self.catalog.texts
        lines = [f"user {self.sim.user[0]}, session step {self.sim.steps[0]}, candidates:"]
        lines += [f"  [{j}] {texts[int(i)]}" for j, i in enumerate(self.sim.candidates[0])]
        return "\n".join(lines)

    def _observation(self) -> dict[str, np.ndarray]:
        return self.sim.observation(0)
