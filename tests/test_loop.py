"""The online loop's logging and progress bars: the latest losses at every log step, and bars that stay out of
non-interactive logs (agents/loop.py, models/encoder.py)."""

from __future__ import annotations

import io

import gymnasium as gym

from agents.base import Task
from agents.loop import LOG_EVERY_STEPS, run_online, train
from agents.random import RandomAgent
from models.encoder import TextEncoder
from tests.conftest import SMALL

NUM_ENVS = 4
CALLS_PER_LOG = LOG_EVERY_STEPS // NUM_ENVS


class CountingUpdates(RandomAgent):
    """Random slates; every third step an update whose loss is the number of updates so far."""

    update_every = 3

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.updates = 0

    def update(self) -> dict[str, float]:
        self.updates += 1
        return {"updates": float(self.updates)}


class Scalars:
    """A stand-in for TensorBoard's ``SummaryWriter`` that keeps what ``add_scalar`` receives."""

    def __init__(self) -> None:
        self.logged: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.logged.setdefault(tag, []).append((step, value))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make_env():
    return gym.make_vec("FeedbackRec/News-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point", **SMALL)


def test_the_latest_losses_are_logged_at_every_log_step_between_updates():
    assert CALLS_PER_LOG % CountingUpdates.update_every != 0  # no log step falls on an update step
    env, log = make_env(), Scalars()
    agent = CountingUpdates(Task.of(env))
    run_online(agent, env, 2 * LOG_EVERY_STEPS, log, progress=False)
    steps = [step for step, _ in log.logged["time/fps"]]
    updates = [calls // agent.update_every for calls in (CALLS_PER_LOG, 2 * CALLS_PER_LOG)]
    assert log.logged["train/updates"] == [(step, float(n)) for step, n in zip(steps, updates, strict=True)]


def test_no_progress_bar_is_written_to_a_log_file(capsys):
    env = make_env()
    train(RandomAgent(Task.of(env)), env, 400, seed=0)
    TextEncoder.load("tiny", "cpu").encode([f"item {i}" for i in range(100)], progress=True)
    assert capsys.readouterr().err == ""


def test_a_terminal_still_gets_the_progress_bars(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    env = make_env()
    train(RandomAgent(Task.of(env)), env, 400, seed=0)
    TextEncoder.load("tiny", "cpu").encode([f"item {i}" for i in range(100)], progress=True)
    shown = terminal.getvalue()
    assert "train RandomAgent" in shown and "encode" in shown and "\r" in shown


def test_an_agent_without_a_training_procedure_of_its_own_is_served_by_the_online_loop():
    env = make_env()
    agent = CountingUpdates(Task.of(env))
    assert train(agent, env, 120, seed=0) == 120 and agent.updates == 120 // NUM_ENVS // agent.update_every
