"""Learner throughput benchmark (prints figures; not a test).

    python experiments/bench_agents.py                         # every agent at 16, 256 and 1,024 sessions
    python experiments/bench_agents.py --agents bert,linucb --sessions 1024 --steps 20000
    python experiments/bench_agents.py --agents bert --sessions 1024 --bert replay_ratio=0.5,cpu_threads=2

User-steps per second of the online training loop (act → env.step → observe → update) for each agent and
number of concurrent sessions, next to the environment alone stepped with random slates in the same run, and
where the time goes (act / env / observe / update, milliseconds per batched step). The BERT agent reads the
real MiniLM embeddings from the on-disk cache (head mode) or fine-tunes the encoder (``bert-lora``,
``bert-adalora``), on the device it would choose (printed). PPO runs Stable-Baselines3's own loop, so only its
total is printed.
"""

from __future__ import annotations

import argparse
import itertools
import time

import gymnasium as gym
import numpy as np
import torch
import yaml
from threadpoolctl import threadpool_limits

import envs  # noqa: F401  (registers the environments)
from agents.base import Task, Transition
from agents.bert import BertAgent
from agents.host_memory import keep_freed_memory
from agents.labels import Wait
from agents.linucb import LinUCBAgent
from agents.sb3 import SB3Agent
from agents.thompson import ThompsonAgent
from models.encoder import default_device

AGENTS = {
    "bert": lambda task, **settings: BertAgent(task, label=Wait(), **settings),
    "bert-lora": lambda task, **settings: BertAgent(task, label=Wait(), **{"finetune": "lora", **settings}),
    "bert-adalora": lambda task, **settings: BertAgent(task, label=Wait(), **{"finetune": "adalora", **settings}),
    "linucb": lambda task: LinUCBAgent(task, label=Wait()),
    "thompson": lambda task: ThompsonAgent(task, label=Wait()),
    "ppo": lambda task: SB3Agent(task, algorithm="ppo", hyperparameters={"n_steps": 16, "batch_size": 256}),
}
PARTS = ("act", "env", "observe", "update")
FINE_TUNING = ("bert-lora", "bert-adalora")
"""Agents that fine-tune the encoder: measured over at most 40 batched steps (they are slow)."""


def make_env(sessions: int, features):
    return gym.make_vec(
        "FeedbackRec/News-v0", num_envs=sessions, vectorization_mode="vector_entry_point", item_features=features
    )


def env_rate(sessions: int, steps: int) -> float:
    """User-steps per second of the environment alone, random slates."""
    env = make_env(sessions, "meta")
    rng = np.random.default_rng(0)
    slates = [np.argsort(rng.random((sessions, 20)), axis=1)[:, :5] for _ in range(16)]
    env.reset(seed=0)
    for slate in slates[:3]:  # compiles the kernels outside the timing
        env.step(slate)
    calls = max(steps // sessions, 20)
    start = time.perf_counter()
    for call in range(calls):
        env.step(slates[call % len(slates)])
    return calls * sessions / (time.perf_counter() - start)


def loop_rate(name: str, sessions: int, steps: int, warmup: int = 5, **settings) -> tuple[float, dict[str, float]]:
    """User-steps per second of the training loop and milliseconds per batched step in each part (BLAS on one
    thread and freed memory kept, as in :func:`agents.loop.run_online`); ``settings`` go to the BERT agents."""
    keep_freed_memory()
    with threadpool_limits(limits=1, user_api="blas"):
        return _loop_rate(name, sessions, steps, warmup, settings)


def _loop_rate(name: str, sessions: int, steps: int, warmup: int, settings: dict) -> tuple[float, dict[str, float]]:
    env = make_env(sessions, None if name.startswith("bert") else "meta")
    agent = AGENTS[name](Task.of(env), **settings) if name.startswith("bert") else AGENTS[name](Task.of(env))
    if name == "ppo":
        start = time.perf_counter()
        agent.learn(env, steps, seed=0)
        return steps / (time.perf_counter() - start), {}
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    spent = dict.fromkeys(PARTS, 0.0)
    calls = max(steps // sessions, 3 * warmup)
    for call in range(calls):
        marks = [time.perf_counter()]
        action = agent.act(obs)
        marks.append(time.perf_counter())
        step = env.step(action)
        marks.append(time.perf_counter())
        agent.observe(Transition.of(env, obs, action, step))
        marks.append(time.perf_counter())
        agent.update()
        marks.append(time.perf_counter())
        obs = step[0]
        if call >= warmup:
            for part, (a, b) in zip(PARTS, itertools.pairwise(marks), strict=True):
                spent[part] += b - a
    measured = calls - warmup
    return measured * sessions / sum(spent.values()), {part: 1e3 * t / measured for part, t in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated, of {', '.join(AGENTS)}")
    parser.add_argument("--sessions", default="16,256,1024", help="concurrent sessions (train.num_envs)")
    parser.add_argument("--steps", type=int, default=20_000, help="user-steps per measurement")
    parser.add_argument("--bert", default="", help="BERT agent settings, e.g. replay_ratio=0.5,cpu_threads=2")
    args = parser.parse_args()
    settings = dict(_setting(item, parser) for item in args.bert.split(",") if item)
    names = args.agents.split(",")
    unknown = sorted(set(names) - set(AGENTS))
    if unknown:
        parser.error(f"--agents {unknown}: expected some of {sorted(AGENTS)}")
    print(f"FeedbackRec learner benchmark; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {default_device()}")  # fmt: skip
    print(f"{'agent':<10}{'sessions':>9}{'user-steps/s':>14}{'env alone':>12}   ms per batched step")
    for sessions in (int(s) for s in args.sessions.split(",")):
        alone = env_rate(sessions, args.steps)
        for name in names:
            steps = min(args.steps, 40 * sessions) if name in FINE_TUNING else args.steps
            rate, parts = loop_rate(name, sessions, steps, **settings)
            split = "  ".join(f"{part} {ms:.1f}" for part, ms in parts.items())
            print(f"{name:<10}{sessions:>9}{rate:>14,.0f}{alone:>12,.0f}   {split}", flush=True)


def _setting(item: str, parser: argparse.ArgumentParser) -> tuple[str, object]:
    """``name=value`` of ``--bert``, the value read as YAML would read it (numbers, null, true)."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        parser.error(f"--bert {item!r}: expected name=value")
    return name, yaml.safe_load(value)


if __name__ == "__main__":
    main()
