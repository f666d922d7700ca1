"""Stable-Baselines3 baselines: PPO and A2C on the slate (``MultiDiscrete``), DQN on a lead item.

Every algorithm runs SB3's ``model.learn`` on our vector env through :class:`agents.sb3_env.SB3VecEnv`,
with SB3's ``MultiInputPolicy`` given candidate-wise parts (:mod:`agents.sb3_policies`): the
:class:`~agents.sb3_policies.CandidateExtractor` reads ``candidate_features`` — meta features or the
BERT embeddings the runner passes — and the user context of :mod:`agents.context`; PPO and A2C draw
slates without replacement (duplicates masked in the distribution), DQN chooses a lead item that
:class:`~agents.slate_actions.LeadItem` completes into a slate, the same in training and evaluation.
"""

from __future__ import annotations

import json

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecMonitor

from agents.base import Agent, Task
from agents.context import UserContext
from agents.loop import LoopState
from agents.loop import restore_or_reset as start_online
from agents.loop import save as save_online
from agents.sb3_env import SB3VecEnv, with_context
from agents.sb3_policies import CandidateExtractor, CandidateQPolicy, SlatePolicy
from agents.slate_actions import SLATE_ACTIONS

ALGORITHMS = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
POLICIES = {"ppo": SlatePolicy, "a2c": SlatePolicy, "dqn": CandidateQPolicy}
COUNTERS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_n_calls",
    "_current_progress_remaining",
    "exploration_rate",
)
"""Training counters saved next to the weights (those the algorithm has)."""
SUPPORTED_ACTIONS = {  # the action spaces each algorithm declares to SB3 (``supported_action_spaces``)
    "ppo": (spaces.MultiDiscrete, spaces.Discrete),
    "a2c": (spaces.MultiDiscrete, spaces.Discrete),
    "dqn": (spaces.Discrete,),
}


class SB3Agent(Agent):
    """A Stable-Baselines3 algorithm as an :class:`~agents.base.Agent`.

    Args:
        algorithm: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
        actions: ``"slate"`` (``MultiDiscrete([M] * k)``, :class:`~agents.slate_actions.Slate`) or
            ``"lead_item"`` (``Discrete(M)``, slate filled by :class:`~agents.slate_actions.LeadItem`).
        hyperparameters: keyword arguments of the SB3 algorithm (``n_steps``, ``learning_rate``, ...).
        policy: ``policy_kwargs`` besides the extractor (e.g. ``net_arch``: the value network's layers).
        extractor: keyword arguments of :class:`~agents.sb3_policies.CandidateExtractor`.
        threads: torch CPU threads for this process (these small networks run fastest on one; None
            keeps torch's default).

    The model is built by the first :meth:`learn` (SB3 needs the environment's ``num_envs``) or by
    :meth:`load`; it trains with SB3's ``model.learn`` and logs SB3's own keys (``rollout/``,
    ``train/``, ``time/``) into the run's TensorBoard directory.
    """

    def __init__(
        self,
        task: Task,
        seed: int = 0,
        algorithm: str = "ppo",
        actions: str = "slate",
        hyperparameters: dict | None = None,
        policy: dict | None = None,
        extractor: dict | None = None,
        threads: int | None = 1,
    ) -> None:
        super().__init__(task, seed)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown SB3 algorithm {algorithm!r}; expected one of {sorted(ALGORITHMS)}")
        if actions not in SLATE_ACTIONS:
            raise ValueError(f"unknown slate actions {actions!r}; expected one of {sorted(SLATE_ACTIONS)}")
        self.algorithm, self.seed = algorithm, seed
        self.decode = SLATE_ACTIONS[actions](task.num_candidates, task.slate_size)
        _require_supported(algorithm, actions, self.decode.space, task)
        self.context = UserContext(task)
        self.algorithm_kwargs = dict(hyperparameters or {})
        self.policy_kwargs = {
            **(policy or {}),
            "features_extractor_class": CandidateExtractor,
            "features_extractor_kwargs": dict(extractor or {}),
        }
        self.model = None
        if threads is not None:
            th.set_num_threads(threads)

    def learn(self, env, total_steps: int, seed: int, log=None, checkpoints=None, checkpoint_every: int = 0) -> int:
        """Reset ``env`` with ``seed`` (or resume from the latest of ``checkpoints``) and run SB3's
        ``model.learn`` up to ``total_steps`` user-steps, checkpointing every ``checkpoint_every`` (0:
        only at the end). Returns the user-steps taken in total. DQN's replay buffer is not checkpointed."""
        state, obs = start_online(self, env, seed, checkpoints)
        venv = VecMonitor(SB3VecEnv(env, obs, self.decode, self.context))
        if self.model is None:
            self.model = self._model(venv)
        else:
            self.model.set_env(venv)
        if log is not None:
            self.model.set_logger(configure(str(log.log_dir), ["tensorboard"]))
            log.add_text("hyperparameters", _markdown_table({"algorithm": self.algorithm, **self.algorithm_kwargs}))
        saver = _Checkpointer(checkpoints, self, env, checkpoint_every, state.steps) if checkpoints else None
        self.model.learn(max(total_steps - state.steps, 0), callback=saver, reset_num_timesteps=False)
        self.model.logger.close()
        if saver is not None:
            saver.save()
        return self.model.num_timesteps

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.algorithm.upper()} agent has no model yet: call learn(env, ...) or load(dir)")
        raw, _ = self.model.predict(with_context(obs, self.context), deterministic=not explore)
        return self.decode(raw, obs)

    def hyperparameters(self) -> dict:
        return json.loads(json.dumps({"algorithm": self.algorithm, "hyperparameters": self.algorithm_kwargs}))

    def components(self) -> dict:
        """The model (policy weights, optimiser state, training counters) and the user context."""
        return {"model": _ModelState(self), "context": self.context}

    def _model(self, venv, n_envs: int = 1):
        """A fresh SB3 model on ``venv``, or, for ``venv=None``, on this task's spaces with ``n_envs``
        sub-environments (what loading needs: SB3 builds buffers and policy from the spaces)."""
        model = ALGORITHMS[self.algorithm](
            POLICIES[self.algorithm], venv, seed=self.seed, device="cpu", policy_kwargs=self.policy_kwargs,
            _init_setup_model=venv is not None, **self.algorithm_kwargs,
        )  # fmt: skip
        if venv is None:
            model.observation_space = SB3VecEnv.observation_space_of(self.task.observation_space, self.context)
            model.action_space, model.n_envs = self.decode.space, n_envs
            model._setup_model()
        return model


def _require_supported(algorithm: str, actions: str, space: spaces.Space, task: Task) -> None:
    """Refuse an action space the algorithm cannot learn, naming the decoder that would work."""
    supported = SUPPORTED_ACTIONS[algorithm]
    if isinstance(space, supported):
        return
    usable = [
        f"actions={name!r} ({decoder.__name__})"
        for name, decoder in SLATE_ACTIONS.items()
        if isinstance(decoder(task.num_candidates, task.slate_size).space, supported)
    ]
    raise ValueError(
        f"{ALGORITHMS[algorithm].__name__} cannot act on {space} (actions={actions!r}): it supports only "
        f"{', '.join(s.__name__ for s in supported)} action spaces; use {' or '.join(usable)}"
    )


class _ModelState:
    """An :class:`SB3Agent`'s model as a stateful component: the policy's weights, its optimiser's state and the
    training counters (no pickle, unlike SB3's own ``model.zip``); loading rebuilds the model from the agent's
    settings first."""

    def __init__(self, agent: SB3Agent) -> None:
        self.agent = agent

    def state_dict(self) -> dict:
        model = self.agent.model
        counters = {name: getattr(model, name) for name in COUNTERS if hasattr(model, name)}
        return {
            "n_envs": model.n_envs,
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "counters": counters,
        }

    def load_state_dict(self, state) -> None:
        model = self.agent._model(None, n_envs=state["n_envs"])
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
        for name, value in state["counters"].items():
            setattr(model, name, value)
        self.agent.model = model


class _Checkpointer(BaseCallback):
    """Writes the online loop's checkpoint (agent, environment, step count) every ``every`` user-steps
    (0: only when :meth:`save` is called)."""

    def __init__(self, checkpoints, agent: Agent, env, every: int, last: int) -> None:
        super().__init__()
        self.checkpoints, self.agent, self.env, self.every, self.last = checkpoints, agent, env, every, last

    def save(self) -> None:
        self.last = self.agent.model.num_timesteps
        save_online(self.checkpoints, self.agent, self.env, LoopState(self.last))

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps - self.last >= self.every:
            self.save()
        return True


def _markdown_table(values: dict) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in values.items())
    return f"| parameter | value |\n|---|---|\n{rows}"
