"""Baselines under one protocol: every agent acts validly on every domain, learns only from arrived
feedback, is deterministic for a seed, saves and loads; SB3 plumbing; normalized_score arithmetic."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from agents.base import Task, Transition
from agents.checkpoint import Checkpoints
from agents.context import UserContext
from agents.evaluation import evaluate, normalized_score
from agents.linear import FoldedInteractions, interactions
from agents.linucb import LinUCBAgent
from agents.loop import run_online, train
from agents.sb3 import SB3Agent
from agents.sb3_env import SB3VecEnv
from agents.sb3_policies import CandidateExtractor, PlackettLuce
from agents.slate_actions import LeadItem, Slate
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import Signal
from tests.conftest import ENV_IDS, SMALL

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "agent"
AGENTS = ["random", "oracle", "popularity", "egreedy", "linucb", "thompson", "ppo", "a2c", "dqn"]
LEARNERS = ["popularity", "egreedy", "linucb", "thompson", "ppo", "a2c", "dqn"]
TINY = {  # SB3 settings that let 64 user-steps include updates
    "ppo": {"hyperparameters": {"n_steps": 8, "batch_size": 16, "n_epochs": 1}},
    "a2c": {"hyperparameters": {"n_steps": 4}},
    "dqn": {"hyperparameters": {"learning_starts": 16, "buffer_size": 256, "batch_size": 16}},
}
STEPS, NUM_ENVS, EVAL_SEED = 64, 4, 99


def make_env(env_id: str = "FeedbackRec/News-v0", num_envs: int = NUM_ENVS, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **SMALL, **kwargs)


def make_agent(name: str, env, seed: int = 0, label: str = "wait", **overrides):
    """The agent of ``conf/agent/<name>.yaml`` (its ``${label}`` from ``conf/label/<label>.yaml``, its
    ``${feedback.agent.*}`` from the default feedback strategy, ``conf/feedback/multitask.yaml``)."""
    agent = OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), TINY.get(name, {}), overrides)
    groups = {group: OmegaConf.load(CONF.parent / group / f"{option}.yaml") for group, option in
              (("label", label), ("feedback", "multitask"))}  # fmt: skip
    cfg = OmegaConf.create({"agent": agent, **groups})
    return instantiate(cfg.agent, _partial_=True)(task=Task.of(env), seed=seed)


def trained(name: str, env_id: str = "FeedbackRec/News-v0", seed: int = 0, **env_kwargs):
    env = make_env(env_id, **env_kwargs)
    agent = make_agent(name, env, seed)
    assert train(agent, env, STEPS, seed=seed) >= STEPS
    return agent


def assert_valid_slates(slates: np.ndarray, batch: int, task: Task, may_mask: bool = False) -> None:
    """Right shape and range; no repeated candidate, except that a slot may repeat the slate's first item on
    purpose (a masked, empty slot: only the oracle leaves slots empty)."""
    assert slates.shape == (batch, task.slate_size) and np.issubdtype(slates.dtype, np.integer)
    assert ((slates >= 0) & (slates < task.num_candidates)).all()
    for row in slates.tolist():
        shown = [row[0]] + [c for c in row[1:] if not (may_mask and c == row[0])]
        assert len(set(shown)) == len(shown), f"a slate repeats a candidate: {row}"


# ---------------------------------------------------------------------------- every agent, every domain


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_learns_and_acts_validly_on_every_domain(name, env_id):
    agent = trained(name, env_id)
    env = make_env(env_id, num_envs=6, delays="none")
    obs, _ = env.reset(seed=EVAL_SEED)
    agent.attach(env)
    for explore in (True, False):
        assert_valid_slates(agent.act(obs, explore=explore), 6, agent.task, may_mask=name == "oracle")
    metrics = evaluate(agent, make_env(env_id, num_envs=6, delays="none"), seed=EVAL_SEED)
    assert metrics["episodes"] == 6 and np.isfinite(metrics["episode_reward_mean"])


@pytest.mark.parametrize("name", ["linucb", "ppo", "dqn"])
def test_agents_read_item_embeddings_given_instead_of_meta_features(name):
    """A (num_items, d) array — what the runner passes for BERT — reaches the agents' models."""
    embeddings = np.random.default_rng(0).normal(size=(SMALL["num_items"], 7)).astype(np.float32)
    agent = trained(name, item_features=embeddings)
    seen = agent.context.features.any(axis=1)
    np.testing.assert_array_equal(agent.context.features[seen], embeddings[seen])
    if name == "linucb":
        assert agent.theta.shape == (1 + 4 * 7,)
    else:
        policy = agent.model.policy
        extractor = (policy.q_net if name == "dqn" else policy).features_extractor
        assert isinstance(extractor, CandidateExtractor) and extractor.encode[0].in_features == 4 * 7


@pytest.mark.parametrize("name", ["linucb", "ppo"])
def test_contextual_agents_without_candidate_features_name_the_setting(name):
    with pytest.raises(ValueError, match=r"candidate_features.*item_features='meta'"):
        make_agent(name, make_env(item_features=None))


# ---------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("name", AGENTS)
def test_same_seed_same_training_same_evaluation(name):
    first, second = (
        evaluate(trained(name, seed=3), make_env(num_envs=8, delays="none"), seed=EVAL_SEED) for _ in range(2)
    )
    assert first == second


@pytest.mark.parametrize(
    ("agent", "random", "oracle", "expected"),
    [(5.0, 1.0, 9.0, 0.5), (1.0, 1.0, 9.0, 0.0), (9.0, 1.0, 9.0, 1.0), (-3.0, 1.0, 9.0, -0.5), (13.0, 1.0, 9.0, 1.5)],
)
def test_normalized_score_on_hand_made_numbers(agent, random, oracle, expected):
    assert normalized_score(agent, random, oracle) == pytest.approx(expected)


@pytest.mark.parametrize(("random", "oracle"), [(2.0, 2.0), (3.0, 1.0)])
def test_normalized_score_refuses_an_oracle_not_above_random(random, oracle):
    with pytest.raises(ValueError, match="must exceed random"):
        normalized_score(1.0, random, oracle)


class HiddenInfoScrambled(gym.vector.VectorWrapper):
    """The same environment with its hidden per-step info (utility, choice) replaced by noise."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        rng = np.random.default_rng(len(info["choice"]))
        info = {**info, "utility": rng.normal(size=info["utility"].shape), "choice": np.full_like(info["choice"], -1)}
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("name", LEARNERS)
def test_learning_ignores_hidden_utility_and_choice(name):
    plain, scrambled = make_env(), HiddenInfoScrambled(make_env())
    agents = [make_agent(name, env) for env in (plain, scrambled)]
    for agent, env in zip(agents, (plain, scrambled), strict=True):
        train(agent, env, STEPS, seed=0)
    results = [evaluate(agent, make_env(num_envs=8, delays="none"), seed=EVAL_SEED) for agent in agents]
    assert results[0] == results[1]


@pytest.mark.parametrize("name", LEARNERS)
def test_saved_agent_acts_like_the_original(name, tmp_path):
    agent = trained(name)
    agent.save(tmp_path)
    twin = make_agent(name, make_env())
    twin.load(tmp_path)
    obs, _ = make_env(delays="none").reset(seed=EVAL_SEED)
    np.testing.assert_array_equal(twin.act(obs, explore=False), agent.act(obs, explore=False))


@pytest.mark.parametrize("name", ["popularity", "egreedy", "linucb", "thompson"])
def test_online_learner_resumed_from_a_checkpoint_matches_an_uninterrupted_one(name, tmp_path):
    checkpoints = Checkpoints(tmp_path)
    run_online(make_agent(name, make_env()), make_env(), STEPS, seed=0, checkpoints=checkpoints, progress=False)
    resumed, uninterrupted = make_agent(name, make_env()), make_agent(name, make_env())
    run_online(resumed, make_env(), 2 * STEPS, seed=0, checkpoints=checkpoints, progress=False)
    run_online(uninterrupted, make_env(), 2 * STEPS, seed=0, progress=False)
    results = [evaluate(agent, make_env(num_envs=8, delays="none"), EVAL_SEED) for agent in (resumed, uninterrupted)]
    assert results[0] == results[1]


# ---------------------------------------------------------------------------- delayed credit


def shown_step(agent, env, obs, records=()):
    """Show the first k candidates to every session; deliver hand-made ``records`` with the step.
    Returns the next observation and the impression ids ``(N,)`` of the slates shown."""
    action = np.tile(np.arange(agent.task.slate_size), (env.num_envs, 1))
    next_obs, reward, terminated, truncated, info = env.step(action)
    feedback = np.array(list(records), FEEDBACK_DTYPE)
    agent.observe(Transition(obs, action, reward, terminated, truncated, info, next_obs, feedback))
    return next_obs, info["impression_id"]


def click(impression: int, item: int, user: int) -> tuple:
    """A click record (:data:`FEEDBACK_DTYPE` fields in order) on ``item`` of ``impression``."""
    return (impression, user, 0, 0, item, 0, Signal.CLICK, 1.0, 0, 0, -1)


def one_session(**agent_settings):
    env = make_env(num_envs=1, delays="none")
    agent = LinUCBAgent(Task.of(env), seed=0, **agent_settings)
    obs, _ = env.reset(seed=1)
    agent.attach(env)
    return env, agent, obs


@pytest.mark.parametrize("delay", [1, 2])
def test_late_credit_equals_credit_at_once(delay):
    """Shown items enter the Gram matrix at once; a click arriving steps later adds to the target what
    it would have added on arrival with its impression — label at once, correct later."""
    targets = []
    for arrival in (0, delay):
        env, agent, obs = one_session()
        user, item = int(obs["user_id"][0, 0]), int(obs["candidates"][0, 1])
        for step in range(delay + 1):
            obs, impression = shown_step(agent, env, obs, [click(0, item, user)] if step == arrival else [])
            assert step or impression[0] == 0
        targets.append(agent.model.target.copy())
    assert np.abs(targets[0]).sum() > 0
    np.testing.assert_allclose(targets[1], targets[0])


def test_credit_later_than_the_window_is_counted_stale():
    env, agent, obs = one_session(feedback_window=2)
    user, item = int(obs["user_id"][0, 0]), int(obs["candidates"][0, 0])
    obs, first = shown_step(agent, env, obs)
    for _ in range(2):
        obs, _ = shown_step(agent, env, obs)
    shown_step(agent, env, obs, [click(int(first[0]), item, user)])
    assert agent.stale == 1 and not agent.model.target.any()


def test_user_context_describes_profile_session_and_latest_item():
    env = make_env(num_envs=1)
    context = UserContext(Task.of(env))
    obs, _ = env.reset(seed=0)
    features, items = obs["candidate_features"][0], obs["candidates"][0]
    obs = {**obs, "history": np.full_like(obs["history"], -1)}
    obs["history"][0, -2:] = items[[3, 5]]
    record = np.zeros(1, FEEDBACK_DTYPE)
    record["user_id"], record["item_index"] = obs["user_id"][0, 0], items[7]
    context.describe(obs)
    context.remember(record, np.array([2.0]))
    profile, session, latest = np.split(context.describe(obs)[0], 3)
    np.testing.assert_allclose(profile, features[7], rtol=1e-6)
    np.testing.assert_allclose(session, (features[3] + features[5]) / 2, rtol=1e-6)
    np.testing.assert_allclose(latest, features[5])


# ---------------------------------------------------------------------------- SB3 plumbing


def test_the_bandits_scores_folded_per_user_equal_those_of_the_interaction_features():
    """LinUCB's mean and bonus and Thompson's per-session draws are computed per user without building ``x``: the
    same numbers as ``x·θ`` and ``xᵀ S x`` on :func:`agents.linear.interactions` (``d`` = 4, 7 users, 5 items)."""
    rng = np.random.default_rng(1)
    users, items = rng.standard_normal((7, 12)), rng.standard_normal((7, 5, 4))
    x = interactions(users, items)
    root = rng.standard_normal((17, 40))
    theta, draws, covariance = rng.standard_normal(17), rng.standard_normal((7, 17)), root @ root.T
    folded = FoldedInteractions(users, items)
    np.testing.assert_allclose(folded.dot(theta), x @ theta, rtol=1e-10)
    np.testing.assert_allclose(folded.dot(draws), np.einsum("bmi,bi->bm", x, draws), rtol=1e-10)
    np.testing.assert_allclose(folded.quadratic(covariance), ((x @ covariance) * x).sum(-1), rtol=1e-10)


def test_dqn_on_the_slate_is_refused_naming_the_algorithm_and_the_wrapper():
    with pytest.raises(ValueError, match=r"DQN cannot act on MultiDiscrete.*actions='lead_item' \(LeadItem\)"):
        SB3Agent(Task.of(make_env()), algorithm="dqn", actions="slate")


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"algorithm": "sac"}, r"unknown SB3 algorithm 'sac'; expected one of \['a2c', 'dqn', 'ppo'\]"),
     ({"actions": "pairs"}, r"unknown slate actions 'pairs'; expected one of \['lead_item', 'slate'\]")],
)  # fmt: skip
def test_unknown_sb3_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        SB3Agent(Task.of(make_env()), **settings)


def test_sb3_agent_acts_only_after_learning_or_loading():
    agent = SB3Agent(Task.of(make_env()))
    with pytest.raises(RuntimeError, match="call learn"):
        agent.act(make_env().reset(seed=0)[0])


def test_ppo_learns_a_lead_item_too():
    env = make_env()
    agent = make_agent("ppo", env, actions="lead_item")
    agent.learn(env, STEPS, seed=0)
    obs, _ = env.reset(seed=EVAL_SEED)
    assert_valid_slates(agent.act(obs), NUM_ENVS, agent.task)


def test_sb3_logs_its_own_keys_into_the_run_tensorboard_dir(tmp_path):
    env = make_env()
    writer = SummaryWriter(str(tmp_path))
    make_agent("ppo", env).learn(env, STEPS, seed=0, log=writer)
    writer.close()
    events = b"".join(path.read_bytes() for path in tmp_path.glob("events.out.tfevents.*"))
    for key in (b"rollout/ep_rew_mean", b"train/value_loss", b"time/fps", b"hyperparameters"):
        assert key in events


def test_sb3_resumes_from_its_checkpoint(tmp_path):
    env = make_env()
    agent = make_agent("ppo", env)
    steps = agent.learn(env, STEPS, seed=0, checkpoints=Checkpoints(tmp_path), checkpoint_every=32)
    resumed = make_agent("ppo", make_env())
    assert resumed.learn(make_env(), STEPS, seed=0, checkpoints=Checkpoints(tmp_path)) == steps
    obs, _ = make_env(delays="none").reset(seed=EVAL_SEED)
    np.testing.assert_array_equal(resumed.act(obs, explore=False), agent.act(obs, explore=False))


class Recorder(gym.vector.VectorWrapper):
    """Keeps the last step's outcome of the wrapped environment."""

    def step(self, actions):
        self.last = self.env.step(actions)
        return self.last


def test_vec_env_adapter_passes_terminal_observations_and_truncation():
    env = Recorder(make_env(max_episode_steps=3))
    obs, _ = env.reset(seed=0)
    venv = SB3VecEnv(env, obs, Slate(20, 5), UserContext(Task.of(env)))
    first = venv.reset()
    assert first["user_context"].shape == (NUM_ENVS, 3 * venv.context.dim)
    np.testing.assert_array_equal(first["candidates"], obs["candidates"])
    ended = 0
    for _ in range(6):
        _, _, dones, infos = venv.step(np.tile(np.arange(5), (NUM_ENVS, 1)))
        _, _, terminated, truncated, info = env.last
        np.testing.assert_array_equal(dones, terminated | truncated)
        for i in np.flatnonzero(dones):
            ended += 1
            assert infos[i]["TimeLimit.truncated"] == bool(truncated[i])
            last = infos[i]["terminal_observation"]
            assert set(last) == set(venv.observation_space.spaces)
            np.testing.assert_array_equal(last["candidates"], info["final_obs"][i]["candidates"])
    assert ended >= NUM_ENVS


def test_slate_decoder_refuses_repeats():
    with pytest.raises(ValueError, match=r"slate \[1, 4, 1\] \(row 1\) repeats a candidate"):
        Slate(6, 3)(np.array([[0, 1, 2], [1, 4, 1]]), {})


def test_lead_item_fills_the_slate_with_the_nearest_candidates():
    features = np.array([[[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.0], [0.6, 0.8]]], np.float32)
    np.testing.assert_array_equal(LeadItem(5, 3)(np.array([0]), {"candidate_features": features}), [[0, 2, 4]])


def test_plackett_luce_is_a_distribution_over_distinct_slates():
    scores = th.tensor([[0.3, -1.0, 2.0, 0.5]])
    slates = PlackettLuce(2, 4, 1).proba_distribution(scores)
    total = sum(slates.log_prob(th.tensor([pair])).exp().item() for pair in itertools.permutations(range(4), 2))
    assert total == pytest.approx(1.0, abs=1e-6)
    assert slates.mode().tolist() == [[2, 3]]
    th.manual_seed(0)
    draws = th.cat([slates.sample() for _ in range(200)])
    assert (draws[:, 0] != draws[:, 1]).all()


# ---------------------------------------------------------------------------- the comparison command


@pytest.mark.slow
def test_compare_prints_one_row_per_agent_and_reports_a_failure(tmp_path):
    command = [
        sys.executable, str(ROOT / "experiments" / "compare.py"), "+env=news", f"hydra.run.dir={tmp_path}",
        "train.steps=64", "train.num_envs=4", "eval.episodes=6", "env.num_items=300", "env.num_users=100",
        "+agents=[random,oracle,linucb,ppo,nosuch]",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert set(rows) == {"agent", "random", "oracle", "linucb", "ppo", "nosuch"}
    assert "| 1.00 |" in rows["oracle"] and "failed: " in rows["nosuch"]
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["results"]["oracle"]["normalized_score"] == pytest.approx(1.0)
    assert (tmp_path / "ppo" / "metrics.json").exists()
