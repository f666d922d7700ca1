"""The ``Agent`` protocol every recommender implements, and the transition it observes.

Agents act on *batched* observations: every array in ``obs`` has a leading axis ``B`` (sessions served
at once, from :class:`envs.SlateVectorEnv`), and ``act`` returns slates ``(B, k)``. Feedback reaches an
agent only through ``observe``: the records the environment delivered (:attr:`envs.SlateVectorEnv.delivered`)
after they *arrived*, so delays affect every learner honestly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from agents.persistence import GeneratorState, Stateful, read_state, write_state
from envs.catalog import Catalog
from envs.feedback import EMPTY_FEEDBACK


@dataclass(frozen=True)
class Task:
    """What an agent may know about the environment it will serve.

    Attributes:
        observation_space: the single-session ``Dict`` space.
        action_space: the single-session ``MultiDiscrete([M] * k)`` space.
        catalog: the items (agents may read texts, categories and attributes; never hidden columns).
        domain: the domain name.
    """

    observation_space: spaces.Dict
    action_space: spaces.MultiDiscrete
    catalog: Catalog
    domain: str

    @property
    def slate_size(self) -> int:
        return len(self.action_space.nvec)

    @property
    def num_candidates(self) -> int:
        return int(self.action_space.nvec[0])

    @classmethod
    def of(cls, env) -> Task:
        """The task of a (vector) environment built from :mod:`envs`."""
        base = env.unwrapped
        single_obs = getattr(base, "single_observation_space", base.observation_space)
        single_act = getattr(base, "single_action_space", base.action_space)
        return cls(single_obs, single_act, base.catalog, base.sim.domain.name)


@dataclass(frozen=True)
class Transition:
    """One batched step as an agent sees it.

    Attributes:
        obs: observation the slates were chosen from, arrays ``(B, ...)``.
        action: ``(B, k)`` slates shown.
        reward: ``(B,)`` reward of the feedback that arrived.
        terminated, truncated: ``(B,)`` bool.
        info: the vector env's info (``impression_id``, ``choice``, ...).
        next_obs: observation after the step (already the next session's where one ended).
        feedback: the records (:data:`envs.feedback.FEEDBACK_DTYPE`) that arrived for running sessions; their
            reward is in ``reward``.
        released: the records that waited for users whose new session started this step; their reward is paid
            in that session's first step (the next ``reward``).
        eventual: every record this step's impressions will ever send, at once (a simulator privilege:
            :attr:`envs.SlateVectorEnv.eventual_feedback`), for the ``oracle`` label strategy and the streaming
            evaluation; a view valid until the env's next step.
    """

    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, Any]
    next_obs: dict[str, np.ndarray]
    feedback: np.ndarray = field(default_factory=lambda: EMPTY_FEEDBACK)
    released: np.ndarray = field(default_factory=lambda: EMPTY_FEEDBACK)
    eventual: np.ndarray = field(default_factory=lambda: EMPTY_FEEDBACK)

    @classmethod
    def of(cls, env, obs: dict[str, np.ndarray], action: np.ndarray, step: tuple) -> Transition:
        """The transition of vector ``env``'s ``step`` (what ``env.step(action)`` returned) from ``obs``."""
        next_obs, reward, terminated, truncated, info = step
        base = env.unwrapped
        arrived, released = base.delivered
        return cls(
            obs, action, reward, terminated, truncated, info, next_obs, arrived, released, base.eventual_feedback
        )

    def arrived_feedback(self) -> np.ndarray:
        """All records delivered this step: :attr:`feedback`, then :attr:`released`."""
        return np.concatenate([self.feedback, self.released]) if len(self.released) else self.feedback


class Agent:
    """Base class: a recommender that serves slates and learns from arrived feedback.

    Subclasses override :meth:`act` and, when they learn, :meth:`observe` and :meth:`update`.
    ``update_every`` is how many environment steps pass between calls to :meth:`update` in the runner's
    online loop (:func:`agents.loop.run_online`). Agents with a training procedure of their own
    (Stable-Baselines3) also implement :class:`SelfTraining`; :func:`agents.loop.train` runs that
    procedure for them and the online loop for every other agent.

    Persistence is written once, here: :meth:`save` stores the random generator and every part a subclass
    names in :meth:`components` (each speaks ``state_dict``/``load_state_dict``, :mod:`agents.persistence`),
    with the agent's :meth:`hyperparameters`; :meth:`load` refuses a checkpoint of another agent or other ones.
    """

    update_every: int = 1

    def __init__(self, task: Task, seed: int = 0) -> None:
        self.task = task
        self.rng = np.random.default_rng(seed)

    def attach(self, env) -> None:
        """Called when the agent starts serving ``env`` (training or evaluation)."""

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        """Slates ``(B, k)`` of candidate indices for the batch of observations."""
        raise NotImplementedError

    def observe(self, transition: Transition) -> None:
        """Take in one step's outcome; the default agent learns nothing."""

    def items_published(self, published) -> None:
        """New items took the slots ``published.items`` (an :class:`envs.pool.Published`, with their ids and texts):
        forget what was learnt about the slots' earlier items. Called by the loops (:func:`agents.loop.run_online`,
        :func:`agents.evaluation.evaluate`) after a reset or step that published items, before the next
        :meth:`act`; the default agent keeps nothing per item."""

    def update(self) -> dict[str, float]:
        """One learning step; returns losses/statistics for logging (``train/<name>``)."""
        return {}

    def components(self) -> dict[str, Stateful]:
        """The stateful parts to save besides the random generator (none by default)."""
        return {}

    def hyperparameters(self) -> dict[str, Any]:
        """What the agent was built with (JSON values); a checkpoint only loads into equal ones."""
        return {}

    def save(self, directory: str | Path) -> None:
        """Write the agent's state into ``directory`` (no pickle)."""
        parts = {"rng": GeneratorState(self.rng), **self.components()}
        state = {name: part.state_dict() for name, part in parts.items()}
        write_state(directory, {"agent": type(self).__name__, "settings": self.hyperparameters(), "state": state})

    def load(self, directory: str | Path) -> None:
        """Read what :meth:`save` wrote into this agent; refuses another agent's or other settings'."""
        saved = read_state(directory)
        if saved["agent"] != type(self).__name__:
            raise ValueError(f"checkpoint {directory} holds a {saved['agent']}; this agent is a {type(self).__name__}")
        mine = self.hyperparameters()
        differ = sorted(k for k in set(mine) | set(saved["settings"]) if saved["settings"].get(k) != mine.get(k))
        if differ:
            theirs, ours = [saved["settings"].get(k) for k in differ], [mine.get(k) for k in differ]
            raise ValueError(f"checkpoint {directory} has different settings {differ}: {theirs}; this agent {ours}")
        parts = {"rng": GeneratorState(self.rng), **self.components()}
        for name, part in parts.items():
            part.load_state_dict(saved["state"][name])

    def check_slates(self, slates: np.ndarray, batch: int) -> np.ndarray:
        """Refuse at once a slate whose size differs from the environment's, naming both sizes."""
        if slates.ndim != 2 or slates.shape != (batch, self.task.slate_size):
            raise ValueError(
                f"{type(self).__name__} produced slates of shape {slates.shape}; the environment needs "
                f"({batch}, {self.task.slate_size}) (slate_size={self.task.slate_size})"
            )
        return slates


@runtime_checkable
class SelfTraining(Protocol):
    """An agent that trains itself (Stable-Baselines3 runs its own rollouts and updates)."""

    def learn(self, env, total_steps: int, seed: int, log=None, checkpoints=None, checkpoint_every: int = 0) -> int:
        """Train by interacting with vector ``env`` (reset with ``seed``) for ``total_steps`` user-steps;
        ``log`` is a TensorBoard ``SummaryWriter`` or None; ``checkpoints`` an
        :class:`agents.checkpoint.Checkpoints` to resume from and save to every ``checkpoint_every``
        user-steps. Returns the user-steps taken."""
        ...


def of_sessions(
    obs: dict[str, np.ndarray], action: np.ndarray, sessions: np.ndarray | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The observations and slates ``action`` ``(B, k)`` of the batch's rows ``sessions`` ``(n,)`` (all for None): what
    an agent's ``predict(obs, action, sessions)`` predicts for (see :mod:`agents.stream`)."""
    if sessions is None:
        return obs, action
    return {key: value[sessions] for key, value in obs.items()}, action[sessions]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(B, k)`` of the ``k`` largest ``scores`` ``(B, M)`` per row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
