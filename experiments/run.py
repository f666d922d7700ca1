"""Run one experiment: train an agent online on a FeedbackRec environment, evaluate it, write metrics.

    python experiments/run.py                      # embedded default: news, random agent
    python experiments/run.py +env=ecommerce agent=oracle train.steps=5000

Writes into Hydra's output directory: ``.hydra/`` (the composed config), ``tb/`` (TensorBoard) and
``metrics.json``; returns ``cfg.objective`` for Hydra sweepers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import gymnasium as gym
import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

import envs  # noqa: F401  (registers the environments)
from agents.base import Agent, Task
from agents.evaluation import evaluate, normalized_score
from agents.oracle import OracleAgent
from agents.random import RandomAgent

log = logging.getLogger("feedbackrec")


def make_env(cfg: DictConfig, num_envs: int, evaluation: bool = False):
    """The batched environment of ``cfg.env``; for evaluation without delays or privacy noise."""
    kwargs = OmegaConf.to_container(cfg.env, resolve=True)
    env_id = kwargs.pop("id")
    if evaluation:
        kwargs.update(delays="none", privacy_epsilon=None)
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Train, evaluate and write ``metrics.json``; returns the metrics."""
    if cfg.eval.seed == cfg.seed:
        raise ValueError(f"eval.seed={cfg.eval.seed} equals the training seed; expected disjoint seeds")
    if cfg.eval.episodes < 1:
        raise ValueError(f"eval.episodes={cfg.eval.episodes}; expected at least 1 evaluation episode")
    start = time.perf_counter()
    train_env = make_env(cfg, cfg.train.num_envs)
    task = Task.of(train_env)
    agent: Agent = instantiate(cfg.agent, _partial_=True)(task=task, seed=cfg.seed)
    writer = SummaryWriter(str(output_dir / "tb"))
    writer.add_text("config", "```yaml\n" + OmegaConf.to_yaml(cfg) + "\n```")
    steps = agent.learn(train_env, cfg.train.steps, seed=cfg.seed, log=writer)
    train_seconds = time.perf_counter() - start

    metrics = evaluate(agent, make_env(cfg, cfg.eval.episodes, evaluation=True), seed=cfg.eval.seed)
    if cfg.eval.baselines:
        floor = evaluate(RandomAgent(task, seed=cfg.seed), make_env(cfg, cfg.eval.episodes, True), cfg.eval.seed)
        ceiling = evaluate(OracleAgent(task), make_env(cfg, cfg.eval.episodes, True), cfg.eval.seed)
        metrics["normalized_score"] = normalized_score(
            metrics["episode_reward_mean"], floor["episode_reward_mean"], ceiling["episode_reward_mean"]
        )
    wall = time.perf_counter() - start
    metrics.update(env_steps=steps, wall_seconds=wall, env_steps_per_second=steps / max(train_seconds, 1e-9))
    for name, value in metrics.items():
        if value is not None:
            writer.add_scalar(f"eval/{name}", value, steps)
    writer.close()
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def summary(metrics: dict) -> str:
    """The metrics as an aligned two-column table."""
    rows = [(k, "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = run(cfg, output_dir)
    print(summary(metrics))
    print(f"metrics written to {output_dir / 'metrics.json'}")
    value = metrics[cfg.objective]
    return float(value) if value is not None else float(np.nan)


if __name__ == "__main__":
    main()
