"""The online interaction loop: serve slates, pass arrived feedback to the agent, learn, log.

Reads top to bottom: reset, then for each batched step act → step → observe → (every ``update_every``
steps) update, with TensorBoard scalars under ``rollout/``, ``train/`` and ``time/``.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from tqdm.auto import tqdm

from agents.base import Agent, Transition

LOG_EVERY_STEPS = 1_000


def run_online(agent: Agent, env, total_steps: int, log=None, seed: int = 0, progress: bool = True) -> int:
    """Interact with vector ``env`` for at least ``total_steps`` user-steps; returns user-steps taken.

    ``log`` is a ``torch.utils.tensorboard.SummaryWriter`` or None.
    """
    obs, _ = env.reset(seed=seed)
    agent.attach(env)
    batch = env.num_envs
    returns, lengths = np.zeros(batch), np.zeros(batch, np.int64)
    recent_returns, recent_lengths = deque(maxlen=100), deque(maxlen=100)
    steps, calls, last_log, start = 0, 0, 0, time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"train {type(agent).__name__}", unit="step", disable=not progress, leave=False)
    while steps < total_steps:
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.observe(Transition(obs, action, reward, terminated, truncated, info, next_obs))
        steps, calls = steps + batch, calls + 1
        losses = agent.update() if calls % agent.update_every == 0 else {}
        returns += reward
        lengths += 1
        for i in np.flatnonzero(terminated | truncated):
            recent_returns.append(returns[i])
            recent_lengths.append(lengths[i])
        returns[terminated | truncated], lengths[terminated | truncated] = 0.0, 0
        obs = next_obs
        bar.update(batch)
        if log is not None and (steps - last_log >= LOG_EVERY_STEPS or steps >= total_steps):
            last_log = steps
            fps = steps / (time.perf_counter() - start)
            _log_step(log, steps, fps, recent_returns, recent_lengths, losses)
            bar.set_postfix(reward=f"{np.mean(recent_returns) if recent_returns else 0:.2f}", fps=f"{fps:.0f}")
    bar.close()
    return steps


def _log_step(log, steps, fps, recent_returns, recent_lengths, losses) -> None:
    log.add_scalar("time/fps", fps, steps)
    if recent_returns:
        log.add_scalar("rollout/ep_rew_mean", float(np.mean(recent_returns)), steps)
        log.add_scalar("rollout/ep_len_mean", float(np.mean(recent_lengths)), steps)
    for name, value in losses.items():
        log.add_scalar(f"train/{name}", value, steps)
