"""Every learner learns: trained online at a small budget, it beats random slates on the same evaluation
users — the paired 95% interval of the per-session gain lies above 0 — and does not beat the oracle (the
paired interval of its shortfall reaches 0 or above: normalized_score <= 1 within its interval).

One small world serves every learner (300 items, 1,000 users, feedback without delays, so the budget
measures learning rather than waiting); each learner is tested on the domain where it separated sooner (music or
e-commerce), at the smallest budget tried that separated for each of the training seeds 0, 1 and 2 (the test runs
seed 0). Evaluation follows the runner's protocol
(:func:`agents.evaluation.evaluate`: first sessions of fixed users, greedy slates), with random slates on the
same seed as the pair. The settings are each agent's ``conf/agent`` file, with a few changes that let SB3 update
often within the budget (never its learning rate).
"""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from agents.base import Task
from agents.evaluation import evaluate
from agents.loop import train
from agents.oracle import OracleAgent
from agents.random import RandomAgent
from experiments import config  # noqa: F401  (registers the env schema that conf/ composes with)

CONF = Path(__file__).resolve().parents[1] / "conf"
WORLD = {"num_items": 300, "num_users": 1000, "delays": "none"}
NUM_ENVS, EPISODES, EVAL_SEED = 16, 1000, 99
BERT = {"encoder": "tiny", "batch_size": 64, "dim": 16, "hidden": 32, "device": "cpu"}
LEARNERS = {  # name: (domain, user-steps of training, settings besides conf/agent/<name>.yaml)
    "popularity": ("Music", 1000, {}),
    "egreedy": ("Music", 1000, {}),
    "linucb": ("Ecommerce", 8000, {}),
    "thompson": ("Ecommerce", 8000, {}),
    "bert": ("Music", 2000, BERT),
    "ppo": ("Music", 16000, {"hyperparameters": {"n_steps": 16, "batch_size": 64, "n_epochs": 10, "gamma": 0.0}}),
    "a2c": ("Music", 48000, {}),
    "dqn": (
        "Music",
        24000,
        {
            "hyperparameters": {
                "learning_starts": 100,
                "target_update_interval": 50,
                "exploration_fraction": 0.1,
                "gamma": 0.0,
            }
        },
    ),
}


def make_env(domain: str, num_envs: int):
    return gym.make_vec(f"FeedbackRec/{domain}-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **WORLD)


def make_learner(name: str, env, seed: int, settings: dict, cache_dir: Path):
    """The agent that ``experiments/run.py agent=<name>`` builds (the composed ``conf/``: label strategy ``wait``,
    feedback strategy ``multitask``), with ``settings`` (nested, as in ``conf/agent/<name>.yaml``) set on top."""
    extra = {"cache_dir": str(cache_dir)} if name == "bert" else {}
    overrides = [f"++agent.{key}={value}" for key, value in dotted({**settings, **extra})]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"agent={name}", *overrides])
    return instantiate(cfg.agent, _partial_=True)(task=Task.of(env), seed=seed)


def dotted(settings: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``{"a": {"b": 1}}`` as ``[("a.b", 1)]``."""
    pairs = []
    for key, value in settings.items():
        if isinstance(value, dict):
            pairs += dotted(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def returns_of(agent, domain: str) -> np.ndarray:
    """Per-session returns of ``agent`` on the evaluation users, in sub-environment order (regret not measured)."""
    return np.array(evaluate(agent, make_env(domain, EPISODES), seed=EVAL_SEED, regret=False)["episode_rewards"])


@functools.cache
def reference_returns(domain: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-session returns of random slates and of the oracle on the evaluation users."""
    task = Task.of(make_env(domain, 1))
    return returns_of(RandomAgent(task, seed=0), domain), returns_of(OracleAgent(task), domain)


def paired_interval(difference: np.ndarray) -> tuple[float, float]:
    """The mean of per-session ``difference`` and the half width of its 95% interval."""
    return difference.mean(), 1.96 * difference.std(ddof=1) / np.sqrt(len(difference))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


HEAVY = ("a2c", "dqn")
"""The slowest to separate (half a minute each on 2 cores); they run with ``pytest -m heavy``, PPO stands for SB3 in
the default suite."""


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in LEARNERS])
def test_every_learner_beats_random_on_the_same_users(name, cache_dir):
    domain, budget, settings = LEARNERS[name]
    env = make_env(domain, NUM_ENVS)
    agent = make_learner(name, env, 0, settings, cache_dir)
    assert train(agent, env, budget, seed=0) >= budget
    returns = returns_of(agent, domain)
    random, oracle = reference_returns(domain)
    gain, half_width = paired_interval(returns - random)
    assert gain - half_width > 0, f"{name} after {budget} user-steps on {domain}: {gain:+.3f} ± {half_width:.3f}"
    shortfall, half_width = paired_interval(oracle - returns)  # normalized_score <= 1 within its interval
    assert shortfall + half_width >= 0, f"{name} beats the oracle on {domain}: {-shortfall:+.3f} ± {half_width:.3f}"
