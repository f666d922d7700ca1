"""The online interaction loop: serve slates, pass arrived feedback to the agent, learn, log, checkpoint.

Reads top to bottom: restore or reset, then for each batched step act → step → observe → (every
``update_every`` steps) update, with TensorBoard scalars under ``rollout/``, ``train/`` (the latest
losses) and ``time/``, and a checkpoint (agent, environment, loop counters) every ``checkpoint_every``
user-steps. A :class:`agents.stream.StreamingEvaluation` given as ``stream`` sees each slate before the env steps
and each transition before the agent observes it (it is checkpointed with the loop). A :class:`Warmup` puts a logged
period first: a logging policy serves the first user-steps, the agent observes and learns from them, the streaming
evaluation sees none. :func:`train` is the runner's entry: an agent's own training procedure when it has one
(:class:`agents.base.SelfTraining`), this loop otherwise.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from agents.base import Agent, SelfTraining, Transition
from agents.checkpoint import Checkpoints
from agents.host_memory import keep_freed_memory
from agents.persistence import read_state, write_state
from agents.stream import StreamingEvaluation

LOG_EVERY_STEPS = 1_000


@dataclass
class Warmup:
    """A logged period before the streamed part, as the delayed-feedback literature pretrains on logs before it
    streams (Yang et al., AAAI 2021: 30 days of logs): ``policy`` (a logging policy, e.g. random or popularity)
    serves the first ``steps`` user-steps; the learner observes them and learns from them as from its own slates
    (they are logged slates it did not choose), and no streaming evaluation sees them (``stream_*`` and
    ``online_*`` score the streamed part alone). The policy observes them too (a popularity policy learns)."""

    policy: Agent
    steps: int

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 0:
            raise ValueError(f"train.warmup_steps={self.steps!r}; expected an integer >= 0 (user-steps)")


@dataclass
class LoopState:
    """Counters of the loop that a checkpoint must carry."""

    steps: int = 0
    calls: int = 0
    returns: list = field(default_factory=list)  # running return of each sub-env's current session
    lengths: list = field(default_factory=list)
    recent_returns: list = field(default_factory=list)  # last 100 finished sessions
    recent_lengths: list = field(default_factory=list)

    def finish(self, done: np.ndarray, reward: np.ndarray) -> None:
        returns, lengths = np.asarray(self.returns) + reward, np.asarray(self.lengths) + 1
        self.recent_returns = (self.recent_returns + returns[done].tolist())[-100:]
        self.recent_lengths = (self.recent_lengths + lengths[done].tolist())[-100:]
        returns[done], lengths[done] = 0.0, 0
        self.returns, self.lengths = returns.tolist(), lengths.tolist()


def train(
    agent: Agent,
    env,
    total_steps: int,
    seed: int,
    log=None,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = 0,
    stream: StreamingEvaluation | None = None,
    warmup: Warmup | None = None,
) -> int:
    """Train ``agent`` on vector ``env`` for ``total_steps`` user-steps (see :meth:`SelfTraining.learn` for the
    arguments): by its own procedure when it is :class:`SelfTraining` (which ``stream`` does not see, and which
    refuses a ``warmup``), else by :func:`run_online`. Returns the user-steps taken."""
    if isinstance(agent, SelfTraining):
        if warmup is not None and warmup.steps:
            raise ValueError(
                f"train.warmup_steps={warmup.steps}, but {type(agent).__name__} runs its own training procedure; "
                "expected train.warmup_steps=0"
            )
        return agent.learn(env, total_steps, seed, log, checkpoints, checkpoint_every)
    return run_online(agent, env, total_steps, log, seed, checkpoints, checkpoint_every, stream=stream, warmup=warmup)


def run_online(
    agent: Agent,
    env,
    total_steps: int,
    log=None,
    seed: int = 0,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    stream: StreamingEvaluation | None = None,
    warmup: Warmup | None = None,
) -> int:
    """Interact with vector ``env`` until ``total_steps`` user-steps after the ``warmup``'s (none by default);
    returns the user-steps taken, the warmup's included.

    ``log`` is a ``torch.utils.tensorboard.SummaryWriter`` or None. With ``checkpoints``, the loop
    resumes from the latest checkpoint when there is one, and writes one every ``checkpoint_every``
    user-steps (0: never) and at the end. ``progress``: a tqdm bar, when stderr is a terminal. ``stream``: the
    streaming evaluation to feed, or None. ``warmup``: a logged period first (:class:`Warmup`), or None.

    numpy's BLAS runs on one thread meanwhile: its threads and the simulator's compiled threads otherwise take the
    same cores from each other (a linear bandit's 45 × 45 Gram update measured 5 ms alone, 124 ms beside them).
    The process keeps freed memory for the next tick (:func:`agents.host_memory.keep_freed_memory`).
    """
    keep_freed_memory()
    with threadpool_limits(limits=1, user_api="blas"):
        return _run(agent, env, total_steps, log, seed, checkpoints, checkpoint_every, progress, stream, warmup)


def _run(agent, env, total_steps, log, seed, checkpoints, checkpoint_every, progress, stream, warmup) -> int:
    """:func:`run_online`'s loop."""
    policy, logged = (warmup.policy, warmup.steps) if warmup is not None else (None, 0)
    total_steps += logged
    state, obs = restore_or_reset(agent, env, seed, checkpoints, stream, policy)
    batch, start, first = env.num_envs, time.perf_counter(), state.steps
    last_log = last_save = first
    bar = tqdm(
        total=total_steps,
        initial=state.steps,
        desc=f"train {type(agent).__name__}",
        unit="step",
        disable=None if progress else True,  # None: no bar when stderr is not a terminal (a log file)
        leave=False,
    )
    losses: dict[str, float] = {}  # the latest update's, logged at every log step
    while state.steps < total_steps:
        serving = policy if state.steps < logged else None  # the logging policy, in the warmup
        scored = stream if serving is None else None
        action = (serving or agent).act(obs)
        if scored is not None:
            scored.before_step(env, action)
        step = Transition.of(env, obs, action, env.step(action))
        if scored is not None:
            scored.after_step(agent, step)
        if serving is not None:
            serving.observe(step)
            tell_published(serving, env)
        agent.observe(step)
        tell_published(agent, env)
        state.steps, state.calls = state.steps + batch, state.calls + 1
        if state.calls % agent.update_every == 0:
            losses = agent.update()
        state.finish(step.terminated | step.truncated, step.reward)
        obs = step.next_obs
        bar.update(batch)
        if log is not None and (state.steps - last_log >= LOG_EVERY_STEPS or state.steps >= total_steps):
            last_log = state.steps
            fps = (state.steps - first) / (time.perf_counter() - start)
            _log_step(log, state, fps, losses)
            bar.set_postfix(
                reward=f"{np.mean(state.recent_returns) if state.recent_returns else 0:.2f}", fps=f"{fps:.0f}"
            )
        if checkpoints and checkpoint_every and state.steps - last_save >= checkpoint_every:
            last_save = state.steps
            save(checkpoints, agent, env, state, stream, policy)
    bar.close()
    if checkpoints:
        save(checkpoints, agent, env, state, stream, policy)
    return state.steps


def restore_or_reset(
    agent: Agent,
    env,
    seed: int,
    checkpoints: Checkpoints | None,
    stream: StreamingEvaluation | None = None,
    policy: Agent | None = None,
) -> tuple[LoopState, dict]:
    """Continue from the latest checkpoint (agent, env, counters, the streaming evaluation, a warmup's logging
    ``policy``), or reset ``env`` with ``seed``."""
    latest = checkpoints.latest() if checkpoints else None
    agents = [agent] if policy is None else [agent, policy]
    if latest is None:
        obs, _ = env.reset(seed=seed)
        for one in agents:
            one.attach(env)
            tell_published(one, env)
        return LoopState(returns=[0.0] * env.num_envs, lengths=[0] * env.num_envs), obs
    env.reset(seed=seed)
    env.unwrapped.load_state_dict(read_state(latest / "env"))
    for one, directory in zip(agents, ("agent", "policy"), strict=False):
        one.attach(env)  # before loading: the saved agent continues the saved env's impression ids
        one.load(latest / directory)
        tell_published(one, env)
    state = LoopState(**json.loads((latest / "loop.json").read_text()))
    if stream is not None:
        stream.load_state_dict(read_state(latest / "stream"))
    return state, env.unwrapped.observation()


def tell_published(agent: Agent, env) -> None:
    """Hand the items ``env`` published at its last reset or step (``env.unwrapped.published``) that are new to the
    agent to :meth:`~agents.base.Agent.items_published`.

    Item ids are unique over a world's run, so an item is new to the agent when its id differs from the id the
    agent last knew in its slot: an agent that trained up to tick ``T`` and is evaluated in a world reset at a later
    tick is told only of the items published since ``T``, not of every slot that changed in the evaluation world.
    What the agent knows starts with the first world it meets here (the catalogue after its reset, or after a
    checkpoint's restore).
    """
    ids = env.unwrapped.catalog.item_ids
    known = getattr(agent, "_known_item_ids", None)
    if known is None or len(known) != len(ids):
        agent._known_item_ids = list(ids)
        return
    published = env.unwrapped.published
    slots = published.items.tolist()
    new = [j for j, (item, id_) in enumerate(zip(slots, published.item_ids, strict=True)) if known[item] != id_]
    if not new:
        return
    for j in new:
        known[int(published.items[j])] = published.item_ids[j]
    if len(new) < len(published.items):
        published = type(published)(
            published.items[new], [published.item_ids[j] for j in new], [published.texts[j] for j in new]
        )
    agent.items_published(published)


def save(
    checkpoints: Checkpoints,
    agent: Agent,
    env,
    state: LoopState,
    stream: StreamingEvaluation | None = None,
    policy: Agent | None = None,
) -> Path:
    """Write a checkpoint of the agent, the environment, the loop counters, the streaming evaluation and a warmup's
    logging ``policy``."""

    def write(directory: Path) -> None:
        write_state(directory / "env", env.unwrapped.state_dict())
        if stream is not None:
            write_state(directory / "stream", stream.state_dict())
        (directory / "loop.json").write_text(json.dumps(state.__dict__))
        (directory / "agent").mkdir()
        agent.save(directory / "agent")
        if policy is not None:
            (directory / "policy").mkdir()
            policy.save(directory / "policy")

    return checkpoints.save(state.steps, write)


def _log_step(log, state: LoopState, fps: float, losses: dict) -> None:
    log.add_scalar("time/fps", fps, state.steps)
    if state.recent_returns:
        log.add_scalar("rollout/ep_rew_mean", float(np.mean(state.recent_returns)), state.steps)
        log.add_scalar("rollout/ep_len_mean", float(np.mean(state.recent_lengths)), state.steps)
    for name, value in losses.items():
        log.add_scalar(f"train/{name}", value, state.steps)
