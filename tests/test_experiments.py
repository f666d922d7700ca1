"""Config groups compose and instantiate; sweeps run, survive a failing job, and report."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from experiments import report, run

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str, hydra_config: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def test_default_config_is_the_embedded_news_env_with_the_bert_agent():
    cfg = composed()
    assert cfg.env.id == "FeedbackRec/News-v0" and cfg.agent._target_ == "agents.bert.BertAgent"
    assert cfg.eval.seed != cfg.seed


@pytest.mark.parametrize("env", options("env"))
def test_every_env_option_makes_an_env(env):
    cfg = composed(f"+env={env}", "env.num_items=300", "env.num_users=50")
    vec = run.make_env(cfg, 2, None, "meta")
    assert vec.num_envs == 2 and vec.unwrapped.spec.id == cfg.env.id


@pytest.mark.parametrize("agent", options("agent"))
def test_every_agent_option_instantiates_and_acts(agent):
    overrides = ["agent.encoder=tiny"] if agent == "bert" else []
    cfg = composed(f"agent={agent}", "env.num_items=300", "env.num_users=50", *overrides)
    env = run.make_env(cfg, 2, None, "meta")
    instance = run.make_agent(cfg, run.Task.of(env))
    assert type(instance).__name__ == cfg.agent._target_.rsplit(".", 1)[1]
    if agent in ("ppo", "a2c", "dqn"):
        return  # SB3 builds its model in learn(); tests/test_agents.py trains and acts with tiny budgets
    obs, _ = env.reset(seed=0)
    instance.attach(env)
    slates = instance.act(obs)
    assert slates.shape == (2, cfg.env.slate_size)


@pytest.mark.parametrize("feedback", options("feedback"))
@pytest.mark.parametrize("delay", options("delay"))
def test_every_feedback_and_delay_option_builds_a_training_env(feedback, delay):
    cfg = composed(f"feedback={feedback}", f"delay={delay}", "agent=random", "env.num_items=300", "env.num_users=50")
    env = run.make_env(cfg, 2, None, "meta")
    sim = env.unwrapped.sim
    assert sim.channel.delays.mean.max() == pytest.approx(cfg.env.delay_scale * 5) or cfg.env.delay_scale == 0
    assert sim.config.privacy_epsilon == cfg.feedback.privacy_epsilon
    if feedback == "explicit":
        assert sim.reward_weight[[i for i in range(len(sim.reward_weight)) if i != 12]].max() == 0.0
    evaluation = run.make_env(cfg, 2, None, "meta", evaluation=True).unwrapped.sim
    assert evaluation.channel.delays.mean.max() == 0 and evaluation.config.privacy_epsilon is None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = composed(f"experiment={experiment}", hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and "seed" in cfg.hydra.sweeper.params


@pytest.mark.parametrize("launcher", ["joblib", "local_processes", "slurm_cpu", "ray_local"])
def test_launcher_configs_compose(launcher):
    if launcher == "ray_local" and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        pytest.skip("hydra-ray-launcher not installed (pip install 'feedbackrec[ray]')")
    cfg = composed(f"hydra/launcher={launcher}", hydra_config=True)
    assert "Launcher" in cfg.hydra.launcher._target_


def test_typos_and_bad_values_stop_before_any_work():
    with pytest.raises(Exception, match="trian"):
        composed("trian.steps=5")
    with pytest.raises(ValueError, match=r"eval.episodes=0; expected an integer >= 1"):
        run.validate(composed("eval.episodes=0"))
    with pytest.raises(ValueError, match=r"features.item_features='glove'; expected one of"):
        run.validate(composed("features.item_features=glove"))


def sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "run.py"),
            "experiment=feedback_vs_delay_small",
            f"hydra.sweep.dir={tmp_path}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )


@pytest.mark.slow
def test_small_sweep_reports_every_cell_and_plots(tmp_path):
    result = sweep(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.report(tmp_path).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| agent")]
    assert len(rows) == 8  # 2 agents x 2 feedback strategies x 2 delays, 1 seed each
    for png in ("score_vs_delay.png", "reward_curves.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000


@pytest.mark.slow
def test_a_failing_job_does_not_take_down_the_sweep(tmp_path):
    result = sweep(
        tmp_path, "hydra.sweeper.params.agent=popularity", "hydra.sweeper.params.delay=none", "env.slate_size=5,50"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = report.load_jobs(tmp_path)
    assert sum(j["metrics"] is not None for j in jobs) == 2 and sum(j["error"] is not None for j in jobs) == 2
    text = report.report(tmp_path).read_text()
    assert "## Failed jobs" in text and "slate_size=50 exceeds num_candidates=20" in text


@pytest.mark.slow
def test_ray_launcher_runs_a_small_sweep_locally(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    result = sweep(
        tmp_path, "hydra/launcher=ray_local", "hydra.sweeper.params.agent=popularity", "hydra.sweeper.params.delay=none"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(tmp_path.rglob("metrics.json"))) == 2


def test_report_refuses_a_directory_without_jobs(tmp_path):
    with pytest.raises(ValueError, match="holds no Hydra jobs"):
        report.report(tmp_path)
    with pytest.raises(FileNotFoundError):
        report.report(tmp_path / "missing")


def test_a_cell_with_one_seed_says_its_interval_is_undefined(tmp_path):
    def job(delay: str, seed: int, score: float) -> dict:
        overrides = {"delay": delay, "seed": str(seed)}
        return {"dir": tmp_path, "overrides": overrides, "metrics": {"normalized_score": score}, "error": None}

    rows, _ = report.table([job("none", 0, 0.5), job("long", 0, 0.25), job("long", 1, 0.75)], ["delay"])
    single, paired = (next(row for row in rows if row.startswith(f"| {delay} |")) for delay in ("none", "long"))
    assert "0.500 (1 seed: CI undefined)" in single and "±" not in single
    assert re.search(r"0\.500 ± \d+\.\d{3}", paired) and "undefined" not in paired


def test_config_table_lists_every_setting():
    cfg = composed("agent=random")
    table = run.config_table(cfg)
    assert "| `train.steps` | `100000` |" in table and "| `env.id` | `FeedbackRec/News-v0` |" in table
    assert OmegaConf.select(cfg, "train.steps") == 100000
