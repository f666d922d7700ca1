"""Resuming is not restarting: a run continued from a checkpoint takes only the steps that remain, starts
from exactly the saved agent and environment, and ends where the uninterrupted run ends — even when the
continuation is given another seed, which a restart from scratch would follow.

Each check is made at several kill points: after the first batched step, in the middle of the first
sessions, and after sessions have ended and restarted with feedback still pending.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.base import Task
from agents.checkpoint import Checkpoints
from agents.egreedy import EpsilonGreedyAgent
from agents.loop import train
from agents.persistence import read_state
from tests.test_agents import make_agent, make_env
from tests.test_reliability import StepCounter

ROOT = Path(__file__).resolve().parents[1]
ONLINE = ["popularity", "egreedy", "linucb", "thompson", "bert"]
KILL_POINTS = [4, 60, 128]  # user-steps (4 sessions side by side): one step, mid-session, after restarts
RUNS = [(name, kill) for name in ONLINE[:-1] for kill in KILL_POINTS]
RUNS.append(("bert", 60))  # one kill point: the tiny BERT is slower
FINAL = 200
BERT = {"encoder": "tiny", "batch_size": 16, "buffer_size": 2000, "dim": 8, "hidden": 16, "memory_size": 4}


def agent(name: str, env, cache_dir: Path):
    overrides = {**BERT, "cache_dir": str(cache_dir)} if name == "bert" else {}
    return make_agent(name, env, **overrides)


def learn(name: str, total: int, seed: int, cache_dir: Path, root: Path | None = None):
    """Train a fresh agent ``name`` on a fresh counted environment (resuming from ``root`` when it holds a
    checkpoint); returns the agent, the counted environment and the user-steps reported."""
    env = StepCounter(make_env())
    learner = agent(name, env, cache_dir)
    checkpoints = None if root is None else Checkpoints(root)
    steps = train(learner, env, total, seed=seed, checkpoints=checkpoints)
    return learner, env, steps


def agent_state(learner, directory: Path):
    learner.save(directory)
    return read_state(directory)


def assert_same(a, b, where: str = "state") -> None:
    """Nested states (mappings, lists, arrays, tensors, JSON values) are equal, bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def differs(a, b) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.mark.parametrize(("name", "kill"), RUNS)
def test_a_resumed_run_takes_only_the_remaining_steps_from_the_saved_state(name, kill, tmp_path, cache_dir):
    """Interrupted after ``kill`` user-steps, the run continues with ``(FINAL - kill) / 4`` batched steps; its
    first step meets the environment exactly as saved, and it ends with the agent and environment of the run
    that was never interrupted, although the continuation was given seed 1 (a fresh run with seed 1 differs)."""
    learn(name, kill, 0, cache_dir, tmp_path / "run")
    checkpoint = Checkpoints(tmp_path / "run").latest()
    saved_env = read_state(checkpoint / "env")

    resumed, env, steps = learn(name, FINAL, 1, cache_dir, tmp_path / "run")
    assert steps == FINAL
    assert env.steps == (FINAL - kill) // env.num_envs, "the resumed run did not start at the checkpoint"
    assert_same(env.first_state, saved_env, "environment at the first resumed step")

    uninterrupted, clean_env, _ = learn(name, FINAL, 0, cache_dir)
    _, fresh_env, _ = learn(name, FINAL, 1, cache_dir)
    assert_same(env.unwrapped.state_dict(), clean_env.unwrapped.state_dict(), "environment")
    resumed_state = agent_state(resumed, tmp_path / "resumed")
    assert_same(resumed_state["state"], agent_state(uninterrupted, tmp_path / "clean")["state"], "agent")
    assert differs(fresh_env.unwrapped.state_dict(), clean_env.unwrapped.state_dict()), "seed 1 changes nothing"


@pytest.mark.parametrize("name", ONLINE)
def test_a_resumed_agent_starts_from_the_saved_agent(name, tmp_path, cache_dir):
    """Resumed with nothing left to do, the agent holds exactly what the checkpoint saved: no step is taken
    and its state equals the saved agent's (a fresh agent's differs)."""
    saved, _, _ = learn(name, 128, 0, cache_dir, tmp_path / "run")
    resumed, env, steps = learn(name, 128, 1, cache_dir, tmp_path / "run")
    assert steps == 128 and env.steps == 0
    saved_state = agent_state(saved, tmp_path / "saved")["state"]
    assert_same(agent_state(resumed, tmp_path / "resumed")["state"], saved_state, "agent")
    assert differs(agent_state(agent(name, make_env(), cache_dir), tmp_path / "fresh")["state"], saved_state)


@pytest.mark.parametrize("kill", [32, 64])
def test_sb3_resumes_with_the_remaining_steps_and_the_saved_policy(kill, tmp_path, cache_dir):
    """PPO checkpointed after ``kill`` user-steps: continued to 96 with seed 1 it takes only the remaining
    steps, and continued to ``kill`` it takes none and acts exactly like the saved policy."""
    saved, _, steps = learn("ppo", kill, 0, cache_dir, tmp_path / "run")
    assert steps == kill
    idle, idle_env, steps = learn("ppo", kill, 1, cache_dir, tmp_path / "run")
    assert steps == kill and idle_env.steps == 0
    obs, _ = make_env(delays="none").reset(seed=99)
    np.testing.assert_array_equal(idle.act(obs, explore=False), saved.act(obs, explore=False))
    assert_same(agent_state(idle, tmp_path / "idle")["state"], agent_state(saved, tmp_path / "saved")["state"])
    _, env, steps = learn("ppo", 96, 1, cache_dir, tmp_path / "run")
    assert steps == 96 and env.steps == (96 - kill) // env.num_envs


# ---------------------------------------------------------------- a run killed with SIGKILL, then resumed

KILLED_WORLD = {"num_items": 300, "num_users": 200}
KILLED_AGENT = {"epsilon": 0.1, "prior_strength": 1.0}
TRAINER = textwrap.dedent(
    f"""
    import sys
    import gymnasium as gym
    import envs
    from agents.base import Task
    from agents.checkpoint import Checkpoints
    from agents.egreedy import EpsilonGreedyAgent
    from agents.loop import train

    env = gym.make_vec("FeedbackRec/News-v0", num_envs=4, vectorization_mode="vector_entry_point", **{KILLED_WORLD!r})
    agent = EpsilonGreedyAgent(Task.of(env), seed=0, **{KILLED_AGENT!r})
    train(agent, env, 10**9, seed=0, checkpoints=Checkpoints(sys.argv[1]), checkpoint_every=40)
    """
)  # light imports: the process is killed as soon as it has checkpointed twice


def egreedy_run(total: int, seed: int, root: Path | None = None) -> StepCounter:
    """The trainer's run, in this process, to ``total`` user-steps; returns its counted environment."""
    env = StepCounter(
        gym.make_vec("FeedbackRec/News-v0", num_envs=4, vectorization_mode="vector_entry_point", **KILLED_WORLD)
    )
    agent = EpsilonGreedyAgent(Task.of(env), seed=0, **KILLED_AGENT)
    assert train(agent, env, total, seed=seed, checkpoints=None if root is None else Checkpoints(root)) == total
    return env


def test_a_run_killed_with_sigkill_resumes_where_its_checkpoint_left_it(tmp_path):
    """An online run killed (SIGKILL) after some checkpoints is resumed with another seed: it takes only the
    steps after its newest checkpoint and ends exactly as a run that was never interrupted."""
    root = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(root)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(root.glob("step_*"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err
    latest = Checkpoints(root).latest()
    assert latest is not None
    killed_at = int(latest.name.removeprefix("step_"))
    final = killed_at + 200
    env = egreedy_run(final, 1, root)
    assert env.steps == (final - killed_at) // env.num_envs
    clean_env = egreedy_run(final, 0)
    assert_same(env.unwrapped.state_dict(), clean_env.unwrapped.state_dict(), "environment")
