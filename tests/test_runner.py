"""The Hydra entry point: embedded default, chosen environment, metrics.json contents."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "agent=random",
    "train.steps=200",
    "train.num_envs=4",
    "eval.episodes=8",
    "env.num_items=300",
    "env.num_users=100",
]
KEYS = {
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
    "env_steps",
    "wall_seconds",
    "env_steps_per_second",
}


def run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), *TINY, f"hydra.run.dir={tmp_path}", *overrides],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [(), ("+env=ecommerce", "agent=oracle")], ids=["default", "ecommerce-oracle"])
def test_run_writes_metrics(tmp_path, overrides):
    result = run(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert KEYS <= metrics.keys()
    assert metrics["env_steps"] >= 200
    assert (tmp_path / ".hydra" / "config.yaml").exists() and any((tmp_path / "tb").iterdir())
    assert "episode_reward_mean" in result.stdout
    if "agent=oracle" in overrides:
        assert metrics["normalized_score"] == pytest.approx(1.0)
        assert metrics["purchase_rate"] > 0


TIMING = {"wall_seconds", "env_steps_per_second"}


def start(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "experiments" / "run.py"), f"hydra.run.dir={tmp_path}", *overrides],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL mid-training, restart with resume=true: same total steps, complete metrics.json, and the
    same metrics as a run that was never interrupted (checkpoints restore agent, env and RNG states)."""
    settings = [
        "agent=egreedy",
        "train.steps=30000",
        "train.num_envs=1",
        "train.checkpoint_every=2000",
        "eval.episodes=20",
        "env.num_items=300",
        "env.num_users=100",
    ]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir(), clean.mkdir()
    process = start(killed, *settings)
    latest = killed / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    refused = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), f"hydra.run.dir={killed}", *settings],
        cwd=killed,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "pass resume=true" in refused.stderr
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), f"hydra.run.dir={killed}", *settings, "resume=true"],
        cwd=killed,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert start(clean, *settings).wait() == 0
    after_kill = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((clean / "metrics.json").read_text())
    assert after_kill["env_steps"] == uninterrupted["env_steps"] >= 30000
    assert {k: v for k, v in after_kill.items() if k not in TIMING} == {
        k: v for k, v in uninterrupted.items() if k not in TIMING
    }
