"""Run one experiment: train an agent online on a FeedbackRec environment, evaluate it, write metrics.

    python experiments/run.py                      # embedded default: news, BERT agent
    python experiments/run.py +env=ecommerce agent=linucb delay=long feedback=implicit
    python experiments/run.py -m +env=news experiment=feedback_vs_delay   # a sweep

Writes into Hydra's output directory: ``.hydra/`` (the composed config, as Hydra records it: with the
interpolations that carry the feedback strategy's defaults into ``env.*`` and ``agent.*``),
``resolved_config.yaml`` (the same config resolved: every value the run was built with), ``tb/``
(TensorBoard: training curves, ``eval/*``, HParams and the config as a table), ``checkpoints/``,
``metrics.json`` (the policy evaluation's metrics, :mod:`agents.evaluation`, and the streaming evaluation's during
training, :mod:`agents.stream`: ``stream_*``, ``online_reward_mean``, ``online_regret_mean``; the held-out
``rating_rmse_honest`` and ``spam_detection_auc``, the learner's spam scores against the simulator's spammers,
:func:`agents.evaluation.spam_detection_auc`; or ``failure.json`` when the job failed); returns ``cfg.objective``
for Hydra sweepers. ``train.warmup_steps`` user-steps of a logged period served by ``train.warmup_policy`` (random
or popularity) come before the ``train.steps`` that are streamed and scored (:class:`agents.loop.Warmup`);
``env_steps`` counts both.
``resume=true`` continues from the last checkpoint of the same output directory.

How settings combine: a group supplies defaults, and a value on the command line always wins (Hydra applies
overrides after the groups). One group's settings reach another's as interpolations
(``env.privacy_epsilon: ${feedback.privacy_epsilon}``, ``agent.fusion: ${feedback.agent.fusion}``,
``agent.label: ${label}``), so ``env.privacy_epsilon=1`` or ``agent.fusion=concat`` replaces them; nothing is
merged in after composition, so the recorded config is the one the environment and agent are built from.

Exit codes: 0 done; 2 a user error (a bad key, value or group refused while Hydra composes the config, or a
setting the run refuses before any work), with a message naming it; 1 a failure of the program.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path

import gymnasium as gym
import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.tensorboard import SummaryWriter

from agents.base import Agent, Task
from agents.checkpoint import CheckpointError, Checkpoints
from agents.evaluation import evaluate, normalized_score, spam_detection_auc
from agents.loop import Warmup, train
from agents.oracle import OracleAgent
from agents.popularity import PopularityAgent
from agents.random import RandomAgent
from agents.stream import METRIC_NAMES as STREAM_METRICS
from agents.stream import ONLINE_NAMES, StreamingEvaluation
from envs import SimConfig
from experiments.config import world_arguments

log = logging.getLogger("feedbackrec")

ITEM_FEATURES = ("meta", "none", "bert")
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, CheckpointError, OmegaConfBaseException)
COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException)
"""What Hydra raises for a bad key, value or group on the command line (before ``main`` runs)."""
EVALUATION = {
    "delays": "none",
    **{name: getattr(SimConfig(), name) for name in ("reward_weights", "reward_signals", "privacy_epsilon")},
}
"""Settings of every evaluation env, whatever training used: no delays, the domain's own reward, no privacy."""
WARMUP_POLICIES = {"random": RandomAgent, "popularity": PopularityAgent}
"""The logging policies a run's warmup (``train.warmup_steps``) may be served by (``train.warmup_policy``)."""
METRICS = (
    "episode_reward_mean",
    "episode_reward_ci95",
    "ctr",
    "rating_mean",
    "dwell_mean",
    "purchase_rate",
    "session_length_mean",
    "regret_mean",
    "ndcg_at_k",
    "normalized_score",
    "intra_list_diversity",
    "coverage",
    *STREAM_METRICS,
    *ONLINE_NAMES,
    "cold_start_ctr",
    "fresh_share",
    "rating_rmse_honest",
    "spam_detection_auc",
)


def validate(cfg: DictConfig) -> None:
    """Refuse out-of-range settings before any work, naming the key and the valid range."""
    integers = {
        "seed": 0,
        "train.steps": 1,
        "train.num_envs": 1,
        "train.checkpoint_every": 0,
        "train.warmup_steps": 0,
        "eval.episodes": 1,
        "eval.fresh_ticks": 1,
        "eval.seed": 0,
        "eval.stream_every": 0,
        "eval.regret_every": 0,
        "eval.regret_sessions": 0,
        "eval.stream_sessions": 0,
    }
    for key, low in integers.items():
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key}={value!r}; expected an integer >= {low}")
    for key in ("resume", "eval.baselines"):
        if not isinstance(OmegaConf.select(cfg, key), bool):
            raise ValueError(f"{key}={OmegaConf.select(cfg, key)!r}; expected true or false")
    checks = [
        ("eval.seed", cfg.eval.seed, cfg.eval.seed != cfg.seed, f"a seed other than the training seed {cfg.seed}"),
        (
            "features.item_features",
            cfg.features.item_features,
            cfg.features.item_features in ITEM_FEATURES,
            f"one of {ITEM_FEATURES}",
        ),
        (
            "env.id",
            cfg.env.id,
            cfg.env.id in gym.registry,
            f"one of {sorted(i for i in gym.registry if i.startswith('FeedbackRec/'))}",
        ),
        ("objective", cfg.objective, cfg.objective in METRICS, f"one of {sorted(METRICS)}"),
        (
            "train.warmup_policy",
            cfg.train.warmup_policy,
            cfg.train.warmup_policy in WARMUP_POLICIES,
            f"one of {sorted(WARMUP_POLICIES)}",
        ),
    ]
    for key, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"{key}={value!r}; expected {expected}")


def item_features(cfg: DictConfig, catalog) -> str | np.ndarray | None:
    """What the environments put in ``candidate_features``: meta features, none, or text embeddings
    (encoded once per catalogue and model, then read from the embedding cache)."""
    choice = cfg.features.item_features
    if choice == "bert":
        from models import catalog_embeddings

        return catalog_embeddings(catalog, cfg.features.encoder)
    return None if choice == "none" else "meta"


def make_env(cfg: DictConfig, num_envs: int, catalog, features, evaluation_of=None):
    """The batched environment of ``cfg.env`` over ``catalog``: built with every ``env.*`` setting as recorded
    (training), or, given the training env as ``evaluation_of``, with :data:`EVALUATION`'s in place of delays,
    reward and privacy and with the training world's population (a population's size is part of its draws: the
    default one grows with the batch, so an evaluation batch of another size would meet other people under the
    same user ids)."""
    env_id, kwargs = world_arguments(cfg.env)
    if evaluation_of is not None:
        kwargs.update(EVALUATION, num_users=evaluation_of.unwrapped.sim.config.num_users)
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        catalog=catalog,
        item_features=features,
        **kwargs,
    )


def make_agent(cfg: DictConfig, task: Task) -> Agent:
    """Instantiate ``cfg.agent`` exactly as recorded (the feedback strategy's agent settings are already in it)."""
    return instantiate(cfg.agent, _partial_=True)(task=task, seed=cfg.seed)


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Train (resuming when asked), evaluate and write ``metrics.json``; returns the metrics.

    Every setting is checked (values, then the environment and the agent built) before any training or output;
    then the resolved config goes to ``resolved_config.yaml``."""
    validate(cfg)
    start = time.perf_counter()
    env_id, kwargs = world_arguments(cfg.env)
    churns = bool(kwargs.get("publish_rate"))  # a churning world's items are its own, made from population_seed
    catalog = None if churns else gym.make(env_id, **kwargs).unwrapped.catalog
    if churns and cfg.features.item_features == "bert":
        raise ValueError(
            f"features.item_features=bert with env.publish_rate={kwargs['publish_rate']}: embeddings fixed at the "
            "start cannot describe items published later; expected features.item_features=meta or none (the BERT "
            "agent encodes the text of info['published'] as items appear)"
        )
    features = item_features(cfg, catalog)
    train_env = make_env(cfg, cfg.train.num_envs, catalog, features)
    task = Task.of(train_env)
    agent = make_agent(cfg, task)
    checkpoints = Checkpoints(output_dir / "checkpoints")
    if not cfg.resume and checkpoints.root.exists() and any(checkpoints.root.iterdir()):
        raise ValueError(f"{output_dir} already holds checkpoints; pass resume=true to continue, or another output dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "resolved_config.yaml", resolve=True)
    writer = SummaryWriter(str(output_dir / "tb"))
    writer.add_text("config", config_table(cfg))
    stream = StreamingEvaluation(
        cfg.eval.stream_every,
        cfg.eval.regret_every,
        writer,
        regret_sessions=cfg.eval.regret_sessions,
        stream_sessions=cfg.eval.stream_sessions,
        seed=cfg.seed,
    )
    policy = WARMUP_POLICIES[cfg.train.warmup_policy](task, seed=cfg.seed)
    warmup = Warmup(policy, cfg.train.warmup_steps) if cfg.train.warmup_steps else None
    loop_start = time.perf_counter()
    steps = train(
        agent,
        train_env,
        cfg.train.steps,
        seed=cfg.seed,
        log=writer,
        checkpoints=checkpoints,
        checkpoint_every=cfg.train.checkpoint_every,
        stream=stream,
        warmup=warmup,
    )
    train_seconds = time.perf_counter() - start
    loop_seconds = time.perf_counter() - loop_start

    # a churning world is evaluated fresh_ticks after training stopped: its freshest items are new to the learner
    start_tick = train_env.unwrapped.sim.clock + cfg.eval.fresh_ticks if churns else 0
    protocol = {"seed": cfg.eval.seed, "fresh_ticks": cfg.eval.fresh_ticks, "start_tick": start_tick}
    metrics = evaluate(agent, make_env(cfg, cfg.eval.episodes, catalog, features, train_env), **protocol)
    (output_dir / "eval_episodes.json").write_text(json.dumps(metrics.pop("episode_rewards")))
    if cfg.eval.baselines:
        floor, ceiling = (
            evaluate(baseline, make_env(cfg, cfg.eval.episodes, catalog, features, train_env), **protocol, regret=False)
            for baseline in (RandomAgent(task, seed=cfg.seed), OracleAgent(task))
        )
        metrics["normalized_score"] = normalized_score(
            metrics["episode_reward_mean"], floor["episode_reward_mean"], ceiling["episode_reward_mean"]
        )
    metrics.update(stream.summary())
    scores = agent.spam_scores() if callable(getattr(agent, "spam_scores", None)) else None
    metrics["spam_detection_auc"] = spam_detection_auc(scores, train_env.unwrapped.sim.population.spam)
    wall = time.perf_counter() - start
    metrics.update(
        env_steps=steps,
        wall_seconds=wall,
        env_steps_per_second=steps / max(train_seconds, 1e-9),  # setup (catalogue, agent, text cache) included
        train_steps_per_second=steps / max(loop_seconds, 1e-9),  # the training loop alone
        eval_seconds=wall - train_seconds,  # evaluation, with the random and oracle baselines
    )
    for name, value in metrics.items():
        if value is not None:
            writer.add_scalar(f"eval/{name}", value, steps)
    writer.add_hparams(
        hyperparameters(cfg), {f"hparam/{k}": v for k, v in metrics.items() if v is not None}, run_name="hparams"
    )
    writer.close()
    _write_json(output_dir / "metrics.json", metrics)
    return metrics


def config_table(cfg: DictConfig) -> str:
    """The resolved config as a Markdown table (TensorBoard's Text tab renders it)."""
    rows = [f"| `{key}` | `{value}` |" for key, value in sorted(hyperparameters(cfg).items())]
    return "\n".join(["| setting | value |", "|---|---|", *rows])


def hyperparameters(cfg: DictConfig) -> dict[str, str | float | int | bool]:
    """Flat ``dotted.key → scalar`` view of the config (lists and mappings as text)."""
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            else:
                flat[name] = value if isinstance(value, (str, int, float, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def summary(metrics: dict) -> str:
    """The metrics as an aligned two-column table."""
    rows = [(k, "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run(cfg, output_dir)
    except Exception as error:  # one failed job must not take down a sweep: record it, report it
        _write_json(
            output_dir / "failure.json",
            {"error": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()},
        )
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("job failed: %s: %s (see %s)", type(error).__name__, error, output_dir / "failure.json")
            return float("nan")
        if isinstance(error, USER_ERRORS):
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        raise
    print(summary(metrics))
    print(f"metrics written to {output_dir / 'metrics.json'}")
    value = metrics.get(cfg.objective)
    return float(value) if value is not None else float("nan")


def cli() -> None:
    """:func:`main` with the exit codes of the module docstring: Hydra ends every error with 1, so an error of
    composing the config (Hydra has already printed it) becomes 2."""
    try:
        main()
    except SystemExit as stop:
        if stop.code == 1 and isinstance(stop.__context__, COMPOSITION_ERRORS):
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    cli()
