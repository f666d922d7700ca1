"""The Hydra entry point: embedded default, chosen environment, metrics.json contents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.steps=200", "train.num_envs=4", "eval.episodes=8", "env.num_items=300", "env.num_users=100"]
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
