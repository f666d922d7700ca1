"""The Hydra entry point: embedded default, chosen environment, metrics.json contents, what TensorBoard and the
output directory record, and the exit code of a user error."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from experiments import run as runner

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
    "train_steps_per_second",
    "eval_seconds",
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
    "stream_auc_click",
    "stream_pr_auc_click",
    "stream_nll_click",
    "stream_auc_purchase",
    "stream_pr_auc_purchase",
    "stream_nll_purchase",
    "stream_rmse_rating",
    "online_reward_mean",
    "online_regret_mean",
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
        assert metrics["online_regret_mean"] == pytest.approx(0.0, abs=1e-9)  # the oracle's slates are the best
    assert metrics["online_reward_mean"] > 0 and metrics["online_regret_mean"] is not None
    assert_recorded_as_run(tmp_path, metrics)


def tensorboard(directory: Path) -> tuple[dict, str, dict, dict]:
    """What a run wrote to TensorBoard: its scalars (tag → last value), the config table (Text tab), and the
    HParams session's settings and metrics."""
    events = EventAccumulator(str(directory / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    table = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    session = EventAccumulator(str(directory / "tb" / "hparams"), size_guidance={"scalars": 0})
    session.Reload()
    start = HParamsPluginData.FromString(session.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    settings = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.session_start_info.hparams.items()}
    return scalars, table, settings, {tag: session.Scalars(tag)[-1].value for tag in session.Tags()["scalars"]}


def assert_recorded_as_run(directory: Path, metrics: dict) -> None:
    """``.hydra/config.yaml`` resolves to ``resolved_config.yaml``, and TensorBoard holds every evaluation metric
    under ``eval/*`` and ``hparam/*``, every resolved setting in HParams and a config table of them all."""
    resolved = OmegaConf.load(directory / "resolved_config.yaml")
    composed = OmegaConf.load(directory / ".hydra" / "config.yaml")
    assert OmegaConf.to_container(composed, resolve=True) == OmegaConf.to_container(resolved)
    scalars, table, settings, session = tensorboard(directory)
    reported = {name: value for name, value in metrics.items() if value is not None}
    assert {name: scalars[f"eval/{name}"] for name in reported} == pytest.approx(reported, rel=1e-6)
    assert {name: session[f"hparam/{name}"] for name in reported} == pytest.approx(reported, rel=1e-6)
    assert settings == runner.hyperparameters(resolved)
    assert table == runner.config_table(resolved)
    assert "| `env.choice_model` | `mnl` |" in table and "| `train.steps` | `200` |" in table


TIMING = {"wall_seconds", "env_steps_per_second", "train_steps_per_second", "eval_seconds"}
"""The metrics that measure time, which differ between runs of the same experiment."""


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
        "train.steps=8000",
        "train.num_envs=1",
        "train.checkpoint_every=2000",
        "eval.episodes=20",
        "eval.regret_every=0",  # the oracle's regret on every 50th step would be most of the run's time
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
    checkpointed = int(latest.read_text().removeprefix("step_"))  # where the resumed run must start
    refused = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), f"hydra.run.dir={killed}", *settings],
        cwd=killed,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "pass resume=true" in refused.stderr
    earlier_logs = set((killed / "tb").glob("events.out.tfevents.*"))
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), f"hydra.run.dir={killed}", *settings, "resume=true"],
        cwd=killed,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (resumed_log,) = set((killed / "tb").glob("events.out.tfevents.*")) - earlier_logs
    events = EventAccumulator(str(resumed_log))
    events.Reload()
    assert min(e.step for e in events.Scalars("time/fps")) > checkpointed, "the resumed run started over"
    assert start(clean, *settings).wait() == 0
    after_kill = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((clean / "metrics.json").read_text())
    assert after_kill["env_steps"] == uninterrupted["env_steps"] >= 8000
    assert {k: v for k, v in after_kill.items() if k not in TIMING} == {
        k: v for k, v in uninterrupted.items() if k not in TIMING
    }


def test_the_entry_point_starts_without_importing_transformers():
    """transformers takes seconds to import and only a text encoder needs it: a run of another agent, and a user
    error, do not wait for it."""
    code = "import sys, experiments.run; print(sorted(m for m in sys.modules if m.startswith('transformers')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["env.choise_model=cascade"], r"Key 'choise_model' not in 'EnvSettings'"),  # refused by Hydra
        (["env.choice_model=logit"], r"error: unknown choice_model 'logit'; expected one of \['cascade', 'mnl'\]"),
        (["agent=egreedy", "agent.epsilon=2"], r"error: epsilon=2; expected a probability in \[0, 1\]"),
    ],
    ids=["bad-key", "bad-value", "bad-agent-setting"],
)
def test_a_user_error_exits_with_2_before_any_work(tmp_path, overrides, message):
    """Composing, the environment and the agent each refuse with exit code 2 and nothing written (the BERT
    agent's ``agent.fusion=sum`` is refused the same way: tests/test_config.py, without the cost of loading it)."""
    result = run(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr[-3000:]
    assert re.search(message, result.stderr), result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    assert not any((tmp_path / name).exists() for name in ("tb", "checkpoints", "resolved_config.yaml", "metrics.json"))
