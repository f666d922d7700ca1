"""Config groups compose and instantiate; sweeps run, survive a failing job, and report."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    evaluation = run.make_env(cfg, 2, None, "meta", env).unwrapped.sim
    assert evaluation.channel.delays.mean.max() == 0 and evaluation.config.privacy_epsilon is None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = composed(f"experiment={experiment}", hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and "seed" in cfg.hydra.sweeper.params


@pytest.mark.parametrize(
    ("world", "env_id", "positive"),
    [
        ("ecommerce_purchase", "FeedbackRec/Ecommerce-v0", "purchase"),
        ("news_churn", "FeedbackRec/News-v1", "consumption"),
    ],
)
def test_a_study_env_sets_the_world_and_the_positive_signal_of_every_strategy(world, env_id, positive):
    cfg = composed("experiment=delay_correction", f"study_env={world}", "label=es_dfm", "delay=very_long",
                   "env.num_items=300", "env.num_users=50")  # fmt: skip
    assert cfg.env.id == env_id and cfg.env.delay_scale == 10.0 and cfg.agent._target_ == "agents.linucb.LinUCBAgent"
    assert run.make_env(cfg, 2, None, "meta").unwrapped.sim.channel.delays.max_steps <= cfg.env.max_delay
    assert run.instantiate(cfg.agent.label).describe() == "es_dfm(window=10)" + ("" if positive == "consumption"
                                                                                 else " on purchase")  # fmt: skip


@pytest.mark.parametrize("launcher", ["joblib", "local_processes", "slurm_cpu", "ray_local"])
def test_launcher_configs_compose(launcher):
    if launcher == "ray_local" and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        pytest.skip("the ray extra is not installed (make test installs it; pip install -e '.[ray]')")
    cfg = composed(f"hydra/launcher={launcher}", hydra_config=True)
    assert "Launcher" in cfg.hydra.launcher._target_


def test_typos_and_bad_values_stop_before_any_work():
    with pytest.raises(Exception, match="trian"):
        composed("trian.steps=5")
    with pytest.raises(ValueError, match=r"eval.episodes=0; expected an integer >= 1"):
        run.validate(composed("eval.episodes=0"))
    with pytest.raises(ValueError, match=r"features.item_features='glove'; expected one of"):
        run.validate(composed("features.item_features=glove"))
    with pytest.raises(ValueError, match=r"train.warmup_policy='greedy'; expected one of \['popularity', 'random'\]"):
        run.validate(composed("train.warmup_policy=greedy"))
    with pytest.raises(ValueError, match=r"train.warmup_steps=-1; expected an integer >= 0"):
        run.validate(composed("train.warmup_steps=-1"))


def sweep(tmp_path: Path, *overrides: str, experiment: str = "feedback_vs_delay_small") -> subprocess.CompletedProcess:
    """Run ``experiment`` (a multirun) into ``tmp_path`` with ``overrides``."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "run.py"),
            f"experiment={experiment}",
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
    main, power = text.split("\n## Power: each feedback strategy against explicit\n")
    rows = [line for line in main.splitlines() if line.startswith("| ") and not line.startswith("| agent")]
    assert len(rows) == 8  # 2 agents x 2 feedback strategies x 2 delays, 1 seed each
    assert len([line for line in power.splitlines() if line.startswith("| ") and "| implicit | 1 |" in line]) == 4
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
    reason = "the ray extra is not installed (make test installs it; pip install -e '.[ray]')"
    pytest.importorskip("ray", reason=reason)
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason=reason)
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
    assert "| `train.steps` | `200000` |" in table and "| `env.id` | `FeedbackRec/News-v0` |" in table
    assert OmegaConf.select(cfg, "train.steps") == 200000


def test_the_evaluation_world_holds_the_training_population_whatever_its_batch():
    """A population's size is part of its draws, and the default grows with the batch: training 1,200 sessions
    (1,200 users) and evaluating 2 must meet the same people under the same ids."""
    cfg = composed("agent=random", "env.num_items=300")
    training = run.make_env(cfg, 1200, None, "meta").unwrapped.sim
    evaluation = run.make_env(cfg, 2, None, "meta", run.make_env(cfg, 1200, None, "meta")).unwrapped.sim
    assert evaluation.config.num_users == training.config.num_users == 1200
    np.testing.assert_array_equal(evaluation.population.interests, training.population.interests)


def correction_jobs(tmp_path: Path) -> list[dict]:
    """Seeds 0-2 of vanilla, oracle and fnw on one world and delay (AUC gaps oracle − vanilla 0.1, 0.12, 0.08, fnw −
    vanilla 0.05, 0.04, 0.06: R-AUC 0.05 / 0.1 = 0.5, the mean of the per-seed ratios 0.53), and a seed 3 of vanilla
    and oracle alone (not paired: left out)."""
    auc = {"vanilla": [0.5, 0.52, 0.54, 0.9], "oracle": [0.6, 0.64, 0.62, 0.1], "fnw": [0.55, 0.56, 0.60]}
    regret = {"vanilla": [0.3, 0.3, 0.3, 9.0], "oracle": [0.2, 0.2, 0.2, 9.0], "fnw": [0.25, 0.27, 0.26]}
    return [
        {"dir": tmp_path, "error": None,
         "overrides": {"study_env": "ecommerce_purchase", "label": label, "delay": "long", "seed": str(seed)},
         "metrics": {"stream_auc_purchase": a, "stream_pr_auc_purchase": a / 10, "stream_auc_click": None,
                     "online_regret_mean": regret[label][seed]}}
        for label, values in auc.items() for seed, a in enumerate(values)
    ]  # fmt: skip


def test_r_auc_is_the_ratio_of_the_paired_gaps_with_a_bootstrap_interval_over_common_seeds(tmp_path):
    lines, figures = report.delay_correction(correction_jobs(tmp_path), ["label"])
    (fnw,) = [line for line in lines if "| fnw |" in line]
    cells = [c.strip() for c in fnw.strip("|").split("|")]
    assert cells[:4] == ["study_env=ecommerce_purchase", "long", "fnw", "3"]
    point, low, high = (float(v) for v in re.findall(r"-?\d+\.\d+", cells[5]))
    assert "(no gap)" not in cells[5]
    assert point == pytest.approx(0.5) and 0.33 <= low < point < high <= 0.75  # within the per-seed ratios (2 d.p.)
    assert cells[6].startswith("+0.0500 ± ") and cells[7].startswith("0.50 [")  # ΔAUC; PR-AUC scaled alike
    assert cells[8].startswith("0.2600 ± ") and cells[9].startswith("-0.0400 ± ")  # regret; paired Δ on seeds 0-2
    (oracle,) = [line for line in lines if "| oracle |" in line]
    assert "1.00 [1.00, 1.00]" in oracle and "| 4 |" in oracle  # seed 3 pairs the oracle with vanilla
    ((delay, *r_auc, regret, _, gap),) = figures["study_env=ecommerce_purchase"]["fnw"]
    assert delay == "long" and r_auc[0] == pytest.approx(0.5) and regret == pytest.approx(0.26) and gap
    again, _ = report.delay_correction(correction_jobs(tmp_path), ["label"])
    assert again == lines  # a seeded bootstrap


def test_a_ratio_without_a_gap_or_with_one_seed_has_no_interval():
    rng = np.random.default_rng(0)
    assert all(math.isnan(v) for v in report.ratio_interval(np.array([[0.5], [0.5], [0.5]]), rng))
    point, low, high = report.ratio_interval(np.array([[0.55], [0.5], [0.6]]), rng)
    assert point == pytest.approx(0.5) and math.isnan(low) and math.isnan(high)
    assert report.has_gap(np.array([0.1, 0.12, 0.08])) and not report.has_gap(np.array([0.1, -0.1, 0.02]))
    assert not report.has_gap(np.array([0.1]))  # one seed: no interval, no gap shown


@pytest.mark.slow
def test_a_tiny_delay_correction_multirun_and_its_report(tmp_path):
    result = sweep(tmp_path, experiment="delay_correction_small")
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.report(tmp_path).read_text()
    section = text.split("## Delay correction")[1]
    rows = [line for line in section.splitlines() if line.startswith("| study_env=")]
    assert len(rows) == 6  # 3 strategies x 2 delays, each on 2 paired seeds
    metrics = [job["metrics"] for job in report.load_jobs(tmp_path)]
    assert all(m["stream_auc_purchase"] is not None and m["stream_auc_click"] is None for m in metrics)  # purchases
    assert all("| 2 |" in row for row in rows)
    long_fnw = next(row for row in rows if "| long | fnw |" in row)
    assert re.search(r"\| -?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\] \|", long_fnw)  # an R-AUC with its interval
    for png in ("r_auc_vs_delay.png", "regret_vs_delay.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000


@pytest.mark.parametrize(("effect", "seeds"), [(1.0, 10), (0.8, 15), (0.5, 34)])
def test_the_seeds_for_power_are_those_of_the_paired_t_test_tables(effect, seeds):
    """A paired two-sided t-test at 5% with 80% power needs 10, 15 and 34 pairs for effect sizes 1, 0.8 and 0.5
    (Cohen, Statistical Power Analysis, 1988; G*Power gives the same)."""
    differences = np.array([effect - 1 / math.sqrt(2), effect + 1 / math.sqrt(2)])  # mean = effect, sd = 1
    assert report.seeds_for_power(differences) == seeds
    assert math.isnan(report.seeds_for_power(np.array([0.3, 0.3])))  # no spread: nothing to size


def test_the_power_section_pairs_each_strategy_with_explicit_on_common_seeds(tmp_path):
    scores = {"explicit": [0.30, 0.50, 0.40, 0.9], "fused_concat": [0.40, 0.55, 0.50]}
    jobs = [
        {"dir": tmp_path, "error": None, "metrics": {"normalized_score": v},
         "overrides": {"feedback": f, "delay": "none", "seed": str(seed)}}
        for f, values in scores.items() for seed, v in enumerate(values)
    ]  # fmt: skip
    (row,) = report.feedback_power(jobs, ["delay", "feedback"])[2:]
    differences = np.array([0.10, 0.05, 0.10])  # seed 3 has no fused_concat run
    assert row.startswith("| none | fused_concat | 3 | +0.0833 ± ")
    assert row.endswith(f"| {report.seeds_for_power(differences):.0f} |")
