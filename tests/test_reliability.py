"""Fault injection, safe artefacts and reproducibility.

- A process killed (SIGKILL) at any point of a checkpoint write leaves a loadable checkpoint: the
  previous one, or the new one once it is complete.
- A corrupt checkpoint or embedding cache is detected by its checksum, reported, and the previous
  checkpoint resumed or the cache rebuilt.
- A sweep in which one job raises at run time completes the other jobs and its report marks the cell.
- Artefacts are never unpickled: checkpoints and agent state refuse pickled arrays, configs and sweep
  files refuse Python YAML tags, and the source holds no unsafe loader.
- The same small experiment gives the same ``metrics.json`` twice and under the joblib launcher.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from agents.base import Task
from agents.checkpoint import Checkpoints, verify
from agents.loop import run_online
from agents.popularity import PopularityAgent
from agents.random import RandomAgent
from envs.catalog import Catalog
from envs.domains.news import NEWS
from tests.test_experiments import report
from tests.test_runner import TIMING
from tests.test_vector_env import make_vec

ROOT = Path(__file__).resolve().parents[1]


class ExplodingAgent(RandomAgent):
    """Serves random slates, then crashes in its third learning step (a learner bug at run time)."""

    def update(self) -> dict[str, float]:
        self.updates = getattr(self, "updates", 0) + 1
        if self.updates == 3:
            raise RuntimeError("ExplodingAgent: simulated crash in update()")
        return {}


# ---------------------------------------------------------------- SIGKILL during a checkpoint write

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from agents.checkpoint import Checkpoints

    kill_at, root = int(sys.argv[1]), sys.argv[2]
    calls = None  # counting starts with the save of step 2

    def tick():
        global calls
        if calls is None:
            return
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def counted(function):
        def wrapper(*args, **kwargs):
            tick()
            return function(*args, **kwargs)
        return wrapper

    def payload(step):
        return bytes(range(256)) * 64 * step

    def write(step):
        def fill(directory):
            with open(directory / "weights.bin", "wb") as f:
                data = payload(step)
                for start in range(0, len(data), 4096):  # a slow, chunked write
                    tick()
                    f.write(data[start : start + 4096])
            (directory / "meta.json").write_text(f'{{"step": {step}}}')
        return fill

    checkpoints = Checkpoints(root, keep=1)
    checkpoints.save(1, write(1))
    if kill_at == -1:  # the external-kill case: announce a half-written file, then wait to be killed
        def fill(directory):
            (directory / "weights.bin").write_bytes(payload(2)[:1000])
            print("half-written", flush=True)
            signal.pause()
        checkpoints.save(2, fill)
    for name in ("replace", "unlink", "rmdir", "mkdir", "fsync"):
        setattr(os, name, counted(getattr(os, name)))
    calls = 0
    checkpoints.save(2, write(2))
    print(f"completed after {calls} operations", flush=True)
    """
)


def writer(root: Path, kill_at: int, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(kill_at), str(root)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def assert_loadable(root: Path) -> int:
    """The newest intact checkpoint under ``root`` holds exactly what its step wrote; returns the step."""
    latest = Checkpoints(root).latest()
    assert latest is not None and verify(latest) is None
    step = json.loads((latest / "meta.json").read_text())["step"]
    assert latest.name == f"step_{step:012d}"
    assert (latest / "weights.bin").read_bytes() == bytes(range(256)) * 64 * step
    return step


def test_sigkill_at_every_point_of_a_checkpoint_write_leaves_a_loadable_checkpoint(tmp_path):
    """Kill the writer before each file-system operation of ``save`` in turn (chunks of the payload,
    fsyncs, renames, the pruning of the older checkpoint): the newest intact checkpoint is always step 1
    or step 2, complete and correct; step 2 once its directory has been renamed into place."""
    steps_seen, kill_at = set(), 1
    while True:
        root = tmp_path / f"kill-{kill_at}"
        process = writer(root, kill_at)
        out, err = process.communicate(timeout=60)
        if process.returncode == 0:
            assert "completed" in out
            break
        assert process.returncode == -signal.SIGKILL, err
        steps_seen.add(assert_loadable(root))
        Checkpoints(root).save(3, lambda d: (d / "meta.json").write_text("{}"))  # the next run's save
        assert not list(root.glob(".staging-*")), "a killed writer's staging directory was not cleaned up"
        kill_at += 1
    assert assert_loadable(root) == 2
    assert steps_seen == {1, 2} and kill_at > 20  # crashes before and after the rename were exercised


def test_sigkill_from_outside_mid_write_leaves_the_previous_checkpoint(tmp_path):
    process = writer(tmp_path, -1)
    assert process.stdout.readline().strip() == "half-written"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert list(tmp_path.glob(".staging-step_000000000002-*")), "the kill did not land mid-write"
    assert assert_loadable(tmp_path) == 1


def test_a_write_that_raises_leaves_no_partial_checkpoint(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    first = checkpoints.save(1, lambda d: (d / "meta.json").write_text('{"step": 1}'))

    def failing(directory: Path) -> None:
        (directory / "meta.json").write_text('{"step": 2}')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(2, failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", first.name]
    assert checkpoints.latest() == first


# ---------------------------------------------------------------- corruption detected by checksum


class StepCounter(gym.vector.VectorWrapper):
    """Counts the batched steps taken through it and keeps the environment's state as the first step found it."""

    steps = 0
    first_state = None

    def step(self, actions):
        if self.steps == 0:
            self.first_state = self.env.unwrapped.state_dict()
        self.steps += 1
        return self.env.step(actions)


def online_run(root: Path | None, total: int, every: int = 0, seed: int = 0, counter: list | None = None):
    """Run (or resume, from ``root``) a random agent to ``total`` user-steps; returns the environment's state.
    The batched steps this call took are appended to ``counter``."""
    env = StepCounter(make_vec("FeedbackRec/News-v0", 4))
    agent = RandomAgent(Task.of(env), seed=0)
    checkpoints = None if root is None else Checkpoints(root, keep=3)
    run_online(agent, env, total, seed=seed, checkpoints=checkpoints, checkpoint_every=every, progress=False)
    if counter is not None:
        counter.append(env.steps)
    return env.unwrapped.state_dict()


def test_a_corrupt_newest_checkpoint_is_reported_and_the_previous_one_resumed(tmp_path, caplog):
    """Corrupt the newest checkpoint of an interrupted run: resuming warns, restarts from the one
    before, and ends in exactly the state of a run that was never interrupted — taking only the steps
    after the previous checkpoint, and although it was given another seed (a restart would follow it)."""
    online_run(tmp_path, 400, every=200)
    newest = sorted(tmp_path.glob("step_*"))[-1]
    data = bytearray((newest / "env" / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "env" / "arrays.npz").write_bytes(bytes(data))
    taken: list[int] = []
    with caplog.at_level(logging.WARNING):
        resumed = online_run(tmp_path, 800, every=200, seed=1, counter=taken)
    assert f"skipping checkpoint {newest}: env/arrays.npz fails its SHA-256 checksum" in caplog.text
    assert taken == [(800 - 200) // 4], "the run did not continue from the checkpoint before the corrupt one"
    clean = online_run(None, 800)
    assert resumed["rng"] == clean["rng"] and resumed["simulator"].keys() == clean["simulator"].keys()
    for name, array in clean["simulator"].items():
        np.testing.assert_array_equal(resumed["simulator"][name], array, err_msg=name)


def test_a_corrupt_embedding_cache_is_reported_and_rebuilt(tmp_path, caplog):
    # imported here, not at the top: sweep jobs import this module for ExplodingAgent and need no torch
    from models.encoder import catalog_embeddings

    catalog = Catalog.generate(NEWS, 30, seed=0)
    first = catalog_embeddings(catalog, "tiny", tmp_path)
    (cache,) = tmp_path.glob("*.safetensors")
    data = bytearray(cache.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in the vectors
    cache.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = catalog_embeddings(catalog, "tiny", tmp_path)
    assert "unusable (checksum mismatch); rebuilding it" in caplog.text
    np.testing.assert_array_equal(again, first)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(catalog_embeddings(catalog, "tiny", tmp_path), first)
    assert "unusable" not in caplog.text, "the rebuilt cache was not written back"


# ---------------------------------------------------------------- a sweep with a job that raises


def test_report_marks_failed_and_unfinished_cells_and_unreadable_results(tmp_path):
    def job(name: str, agent: str, seed: int, result: dict | str | None, file: str = "metrics.json") -> None:
        directory = tmp_path / name
        (directory / ".hydra").mkdir(parents=True)
        (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"agent={agent}", f"seed={seed}"]))
        if result is not None:
            (directory / file).write_text(result if isinstance(result, str) else json.dumps(result))

    job("0", "random", 0, {"episode_reward_mean": 1.0})
    job("1", "random", 1, {"error": "RuntimeError", "message": "boom | twice\nsecond line"}, "failure.json")
    job("2", "oracle", 0, {"episode_reward_mean": 3.0})
    job("3", "oracle", 1, {"episode_reward_mean": 5.0})
    job("4", "linucb", 0, '{"episode_reward_mean": 2.')  # truncated by a crash
    job("5", "thompson", 0, None)  # still running, or killed
    text = report.report(tmp_path).read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "6 jobs: 3 finished, 2 failed, 1 unfinished" in text
    assert "| random | 1 | **1 failed** | n/a | 1.000 (1 seed: CI undefined) |" in rows["random"]
    assert "| oracle | 2 | ok | n/a | **4.000 ± 12.706** |" in rows["oracle"]
    assert rows["linucb"].count("**1 failed**") == 1 + len(report.COLUMNS)
    assert rows["thompson"].count("**1 unfinished**") == 1 + len(report.COLUMNS)
    assert "RuntimeError: boom \\| twice second line" in text
    assert "unreadable job files: metrics.json is not valid JSON" in text


@pytest.mark.slow
def test_a_sweep_with_a_job_that_raises_completes_the_others_and_marks_the_cell(tmp_path):
    targets = "agents.popularity.PopularityAgent,tests.test_reliability.ExplodingAgent,agents.random.RandomAgent"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "run.py"),
            "-m",
            "agent=popularity",
            f"agent._target_={targets}",
            "train.steps=200",
            "train.num_envs=4",
            "eval.episodes=8",
            "env.num_items=300",
            "env.num_users=100",
            f"hydra.sweep.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = report.load_jobs(tmp_path)
    finished = [j for j in jobs if report.status(j) == "finished"]
    failed = [j for j in jobs if report.status(j) == "failed"]
    assert len(jobs) == 3 and len(finished) == 2 and len(failed) == 1
    assert {j["overrides"]["agent._target_"].rsplit(".", 1)[1] for j in finished} == {"PopularityAgent", "RandomAgent"}
    assert failed[0]["error"] == "RuntimeError: ExplodingAgent: simulated crash in update()"
    text = report.report(tmp_path).read_text()
    assert "3 jobs: 2 finished, 1 failed, 0 unfinished" in text
    failed_row = r"^\| tests.test_reliability.ExplodingAgent \| 0 \| \*\*1 failed\*\* \| \*\*1 failed\*\* \|"
    assert re.search(failed_row, text, re.M)
    for agent in ("agents.popularity.PopularityAgent", "agents.random.RandomAgent"):
        assert re.search(rf"^\| {agent} \| 1 \| ok \| (\*\*)?-?\d", text, re.M), agent
    assert text.count("simulated crash in update()") == 1


# ---------------------------------------------------------------- safe artefacts


class Payload:
    """Unpickling this creates ``marker``: proof that a loader executed pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_a_pickled_array_is_refused_even_with_valid_checksums(tmp_path):
    """Someone rewrote the env's arrays *and* the manifest: the checksums pass, the loader still refuses pickles."""
    online_run(tmp_path, 100)
    (latest,) = tmp_path.glob("step_*")
    marker = tmp_path / "executed"
    arrays_file = latest / "env" / "arrays.npz"
    with np.load(arrays_file) as arrays:
        state = dict(arrays)
    state = {name: np.array([Payload(marker)], dtype=object) for name in state}
    np.savez(arrays_file, **state)
    manifest = json.loads((latest / "manifest.json").read_text())
    manifest["env/arrays.npz"] = hashlib.sha256(arrays_file.read_bytes()).hexdigest()
    (latest / "manifest.json").write_text(json.dumps(manifest))
    assert verify(latest) is None
    with pytest.raises(ValueError, match="allow_pickle=False"):
        online_run(tmp_path, 200)
    assert not marker.exists()


def test_agent_state_files_are_loaded_without_pickle(tmp_path):
    env = make_vec("FeedbackRec/News-v0", 2)
    agent = PopularityAgent(Task.of(env), seed=0)
    agent.save(tmp_path)
    marker = tmp_path / "executed"
    with np.load(tmp_path / "arrays.npz") as arrays:
        state = dict(arrays)
    state = {name: np.array([Payload(marker)], dtype=object) for name in state}
    np.savez(tmp_path / "arrays.npz", **state)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        agent.load(tmp_path)
    assert not marker.exists()


YAML_EXPLOIT = "!!python/object/apply:pathlib.Path.touch [{marker}]\n"


def test_config_and_sweep_files_are_read_with_safe_yaml_loaders(tmp_path):
    marker = tmp_path / "executed"
    config = tmp_path / "config.yaml"
    config.write_text("seed: " + YAML_EXPLOIT.format(marker=json.dumps(str(marker))))
    with pytest.raises(yaml.constructor.ConstructorError):
        OmegaConf.load(config)  # the loader Hydra composes configs with
    job = tmp_path / "sweep" / "0" / ".hydra"
    job.mkdir(parents=True)
    (job / "overrides.yaml").write_text("- " + YAML_EXPLOIT.format(marker=json.dumps(str(marker))))
    (jobs,) = report.load_jobs(tmp_path / "sweep")
    assert report.status(jobs) == "failed" and "could not determine a constructor" in jobs["error"]
    assert not marker.exists()


UNSAFE_LOADERS = {
    r"\bpickle\.loads?\(|\bcloudpickle\b|\bdill\b|\bjoblib\.load\(|\bmarshal\.loads?\(": "pickle-based loader",
    r"allow_pickle\s*=\s*True": "np.load with allow_pickle=True",
    r"torch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"yaml\.(?:load|full_load|unsafe_load)\(|Loader\s*=\s*yaml\.(?:Loader|FullLoader|UnsafeLoader)": "unsafe YAML",
    r"trust_remote_code\s*=\s*True": "remote code in from_pretrained",
}


def test_the_source_holds_no_unsafe_loader():
    """Static audit of our packages and scripts; a new unsafe loader fails here with file and line."""
    found = []
    for path in sorted(
        p for folder in ("envs", "agents", "models", "experiments") for p in (ROOT / folder).rglob("*.py")
    ):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found += [
                f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}"
                for pattern, what in UNSAFE_LOADERS.items()
                if re.search(pattern, line)
            ]
    assert not found, "\n".join(found)


def test_sb3_checkpoints_are_loaded_without_pickle(tmp_path):
    import torch

    from agents.sb3 import SB3Agent

    env = make_vec("FeedbackRec/News-v0", 2)
    agent = SB3Agent(Task.of(env), algorithm="ppo", hyperparameters={"n_steps": 8, "batch_size": 16, "n_epochs": 1})
    agent.learn(env, 32, seed=0)
    agent.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".zip", ".pt", ".safetensors", ".pkl")) == [
        "tensors.safetensors",
    ]
    marker = tmp_path / "executed"
    torch.save(Payload(marker), tmp_path / "tensors.safetensors")  # a pickle where the weights were
    with pytest.raises(Exception, match=r"(?i)header|safetensor"):
        agent.load(tmp_path)
    assert not marker.exists(), "loading an SB3 checkpoint executed pickled code"


# ---------------------------------------------------------------- reproducibility

SMALL_EXPERIMENT = [
    "agent=popularity",
    "train.steps=200",
    "train.num_envs=4",
    "eval.episodes=8",
    "env.num_items=300",
    "env.num_users=100",
]


@pytest.mark.slow
def test_the_same_experiment_gives_the_same_metrics_twice_and_under_joblib(tmp_path):
    script = str(ROOT / "experiments" / "run.py")
    commands = {
        "first": [script, *SMALL_EXPERIMENT, f"hydra.run.dir={tmp_path / 'first'}"],
        "second": [script, *SMALL_EXPERIMENT, f"hydra.run.dir={tmp_path / 'second'}"],
        "joblib": [script, "-m", *SMALL_EXPERIMENT, "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path / 'joblib'}"],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, *command], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for name, command in commands.items()
    }
    for name, process in processes.items():
        assert process.wait(timeout=900) == 0, f"{name}: {process.stderr.read()[-3000:]}"
    paths = {
        "first": tmp_path / "first" / "metrics.json",
        "second": tmp_path / "second" / "metrics.json",
        "joblib": tmp_path / "joblib" / "0" / "metrics.json",
    }
    metrics = {name: json.loads(path.read_text()) for name, path in paths.items()}
    assert all(TIMING <= m.keys() for m in metrics.values())
    untimed = {name: {k: v for k, v in m.items() if k not in TIMING} for name, m in metrics.items()}
    assert untimed["first"]["env_steps"] == 200 and len(untimed["first"]) > 10
    assert untimed["first"] == untimed["second"] == untimed["joblib"]
