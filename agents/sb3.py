"""Stable-Baselines3 baselines: PPO and A2C on the slate (``MultiDiscrete``), DQN on a lead item.

Every algorithm runs SB3's own ``MultiInputPolicy`` and ``model.learn`` on our vector env through
:class:`agents.sb3_env.SB3VecEnv`; the policy sees the observation through
:class:`CandidateExtractor`, which reads ``candidate_features`` — meta features or the BERT embeddings
the runner passes — and the user context of :mod:`agents.context`. Raw actions become slates of
distinct candidates by a :mod:`agents.slate_actions` decoder, the same in training and evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecMonitor
from torch import nn

from agents.base import Agent, Task
from agents.context import UserContext
from agents.sb3_env import SB3VecEnv, with_context
from agents.slate_actions import SLATE_ACTIONS

ALGORITHMS = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
SUPPORTED_ACTIONS = {  # the action spaces each algorithm declares to SB3 (``supported_action_spaces``)
    "ppo": (spaces.MultiDiscrete, spaces.Discrete),
    "a2c": (spaces.MultiDiscrete, spaces.Discrete),
    "dqn": (spaces.Discrete,),
}


class CandidateExtractor(BaseFeaturesExtractor):
    """Encodes each candidate with one small network shared by all candidates.

    Candidate ``i`` enters as ``[v_i, m ⊙ v_i, l ⊙ v_i]`` ``(3d,)`` — its features and their products
    with the user context ``[m, l]`` ``(2d,)`` (mean and latest consumed item features) — and leaves
    as a ``code``-wide vector. Output ``(B, M * code + 2d)``: the codes in candidate order (so the
    policy head can tell candidates apart by slot), then the user context.

    Args:
        observation_space: the adapted ``Dict`` space with ``candidate_features`` ``(M, d)`` and
            ``user_context`` ``(2d,)``.
        hidden: width of the shared network's hidden layer.
        code: per-candidate output width.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 32, code: int = 4) -> None:
        m, d = observation_space["candidate_features"].shape
        super().__init__(observation_space, m * code + 2 * d)
        self.encode = nn.Sequential(nn.Linear(3 * d, hidden), nn.ReLU(), nn.Linear(hidden, code), nn.ReLU())

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        items, user = observations["candidate_features"], observations["user_context"]
        d = items.shape[-1]
        mean, last = user[:, None, :d], user[:, None, d:]
        codes = self.encode(th.cat([items, mean * items, last * items], dim=-1))
        return th.cat([codes.flatten(1), user], dim=1)


class SB3Agent(Agent):
    """A Stable-Baselines3 algorithm as an :class:`~agents.base.Agent`.

    Args:
        algorithm: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
        actions: ``"slate"`` (``MultiDiscrete([M] * k)``, repeats resolved by
            :class:`~agents.slate_actions.DistinctSlate`) or ``"lead_item"`` (``Discrete(M)``, slate
            filled by :class:`~agents.slate_actions.LeadItem`).
        hyperparameters: keyword arguments of the SB3 algorithm (``n_steps``, ``learning_rate``, ...).
        policy: ``policy_kwargs`` besides the extractor (e.g. ``net_arch``).
        extractor: keyword arguments of :class:`CandidateExtractor`.

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
        self.hyperparameters = dict(hyperparameters or {})
        self.policy_kwargs = {
            **(policy or {}),
            "features_extractor_class": CandidateExtractor,
            "features_extractor_kwargs": dict(extractor or {}),
        }
        self.model = None

    def learn(self, env, total_steps: int, seed: int, log=None) -> int:
        venv = VecMonitor(SB3VecEnv(env, self.decode, self.context))
        if self.model is None:
            self.model = ALGORITHMS[self.algorithm](
                "MultiInputPolicy", venv, seed=self.seed, device="cpu",
                policy_kwargs=self.policy_kwargs, **self.hyperparameters,
            )  # fmt: skip
        else:
            self.model.set_env(venv)
        venv.seed(seed)
        if log is not None:
            self.model.set_logger(configure(str(log.log_dir), ["tensorboard"]))
            log.add_text("hyperparameters", _markdown_table({"algorithm": self.algorithm, **self.hyperparameters}))
        start = self.model.num_timesteps
        self.model.learn(total_timesteps=total_steps, reset_num_timesteps=False)
        self.model.logger.close()
        return self.model.num_timesteps - start

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.algorithm.upper()} agent has no model yet: call learn(env, ...) or load(dir)")
        raw, _ = self.model.predict(with_context(obs, self.context), deterministic=not explore)
        return self.decode(raw, obs)

    def save(self, directory: str | Path) -> None:
        self.model.save(Path(directory) / "model.zip")
        np.save(Path(directory) / "item_features.npy", self.context.features)

    def load(self, directory: str | Path) -> None:
        self.model = ALGORITHMS[self.algorithm].load(Path(directory) / "model.zip", device="cpu")
        self.context.features = np.load(Path(directory) / "item_features.npy")


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


def _markdown_table(values: dict) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in values.items())
    return f"| parameter | value |\n|---|---|\n{rows}"
