"""Every registered FeedbackRec environment: checkers, determinism, bad input, feedback semantics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from agents.base import Task
from agents.evaluation import evaluate
from agents.oracle import OracleAgent
from agents.random import RandomAgent
from envs import Signal, as_records
from tests.conftest import ENV_IDS, SMALL


def rollout(env, seed: int, steps: int, action_seed: int = 0):
    """Observations, rewards and feedback records of ``steps`` random steps (resets included)."""
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, as_records(info["feedback"]).copy())]
    for _ in range(steps):
        action = rng.permutation(env.action_space.nvec[0])[: len(env.action_space.nvec)]
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, as_records(info["feedback"]).copy()))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs, 0.0, as_records(info["feedback"]).copy()))
    return trace


def test_all_four_domains_are_registered():
    assert {"FeedbackRec/News-v0", "FeedbackRec/Ecommerce-v0", "FeedbackRec/Music-v0", "FeedbackRec/Video-v0"} <= set(
        ENV_IDS
    )
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.vector_entry_point is not None and spec.max_episode_steps is not None


def test_gymnasium_env_checker(env_id):
    check_env(gym.make(env_id, **SMALL).unwrapped, skip_render_check=True)


def test_sb3_env_checker(env_id):
    sb3_check_env(gym.make(env_id, **SMALL).unwrapped, warn=False)


@pytest.mark.parametrize("item_features", ["meta", None])
def test_same_seed_same_run_bit_for_bit(env_id, item_features):
    first = rollout(gym.make(env_id, item_features=item_features, **SMALL), seed=7, steps=300)
    second = rollout(gym.make(env_id, item_features=item_features, **SMALL), seed=7, steps=300)
    assert len(first) == len(second)
    for (obs_a, reward_a, fb_a), (obs_b, reward_b, fb_b) in zip(first, second, strict=True):
        assert obs_a.keys() == obs_b.keys()
        for key in obs_a:
            assert np.array_equal(obs_a[key], obs_b[key]), key
        assert reward_a == reward_b
        assert fb_a.tobytes() == fb_b.tobytes()


def test_different_seeds_differ(env_id):
    a = rollout(gym.make(env_id, **SMALL), seed=1, steps=50)
    b = rollout(gym.make(env_id, **SMALL), seed=2, steps=50)
    assert any(not np.array_equal(x[0]["candidates"], y[0]["candidates"]) for x, y in zip(a, b, strict=False))


def test_observations_never_alias_later_state(env_id):
    env = gym.make(env_id, **SMALL)
    obs, _ = env.reset(seed=0)
    kept = {k: v.copy() for k, v in obs.items()}
    for _ in range(30):
        _, _, terminated, truncated, _ = env.step([0, 1, 2, 3, 4])
        if terminated or truncated:
            env.reset()
    for key in kept:
        assert np.array_equal(obs[key], kept[key]), key


def test_observation_never_contains_nan_and_utility_stays_hidden(env_id):
    env = gym.make(env_id, **SMALL)
    obs, _ = env.reset(seed=3)
    assert "utility" not in obs
    for _ in range(500):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(reward)
        assert all(np.isfinite(v).all() for v in obs.values())
        assert np.isfinite(info["utility"]).all() and info["utility"].shape == (5,)
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.parametrize(
    ("action", "match"),
    [
        ([0, 1, 2, 3], r"shape \(4,\); expected \(5,\)"),
        ([[0, 1, 2, 3, 4]], r"shape \(1, 5\)"),
        ([0, 1, 2, 3, 20], r"entry 20 at position 4; expected values in \[0, 19\]"),
        ([0, 1, 2, 3, -1], r"entry -1 at position 4"),
        ([0.5, 1, 2, 3, 4], r"dtype float64; expected integers"),
        (["a", "b", "c", "d", "e"], r"dtype <U1; expected integers"),
    ],
)
def test_bad_actions_name_the_action_and_the_space(env_id, action, match):
    env = gym.make(env_id, **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    with pytest.raises(ValueError, match=match) as error:
        env.unwrapped.step(action)
    assert "MultiDiscrete([20] * 5)" in str(error.value)


def test_duplicates_error_refuses_repeated_slots(env_id):
    env = gym.make(env_id, duplicates="error", **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    with pytest.raises(ValueError, match=r"repeats candidate 3 at position 2"):
        env.unwrapped.step([3, 1, 3, 4, 5])


def test_duplicates_mask_shows_nothing_in_the_repeated_slot(env_id):
    env = gym.make(env_id, **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step([2, 2, 2, 2, 2])
        assert info["masked_positions"].tolist() == [False, True, True, True, True]
        assert info["choice"] in (-1, 0)
        assert (info["utility"][1:] == 0).all()
        if terminated or truncated:
            env.reset()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slate_size": 30}, r"slate_size=30 exceeds num_candidates=20"),
        ({"num_candidates": 500, "num_items": 100}, r"num_candidates=500 exceeds num_items=100"),
        ({"delays": {"click": -1}}, r"delay for 'click' is -1; expected a number of steps >= 0"),
        ({"delays": {"click": "geometric:x"}}, r"delay for 'click' is 'geometric:x'"),
        ({"delays": {"clicks": 1}}, r"unknown feedback signal 'clicks'"),
        ({"privacy_epsilon": 0.0}, r"privacy_epsilon=0.0; expected a number in \(0.0, inf\]"),
        ({"privacy_epsilon": -2}, r"privacy_epsilon=-2"),
        ({"choice_model": "probit"}, r"unknown choice_model 'probit'; expected one of \['cascade', 'mnl'\]"),
        ({"duplicates": "allow"}, r"duplicates='allow'; expected one of \('mask', 'error'\)"),
        ({"num_items": 0}, r"num_items=0; expected an integer >= 1"),
        ({"misclick_rate": 1.5}, r"misclick_rate=1.5; expected a number in \[0.0, 1.0\]"),
        ({"position_bias": 0}, r"position_bias=0"),
        ({"delay_scale": float("nan")}, r"delay_scale=nan"),
        ({"num_itmes": 10}, r"unknown environment argument\(s\) \['num_itmes'\]"),
        ({"item_features": "bert"}, r"item_features='bert'; expected 'meta', None or a \(num_items, d\) array"),
        ({"item_features": np.zeros((5, 3))}, r"item_features has shape \(5, 3\); expected \(2000, d\)"),
        ({"item_features": np.full((2000, 2), np.nan)}, r"item_features contains NaN"),
    ],
)
def test_invalid_kwargs_fail_at_construction(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gym.make("FeedbackRec/News-v0", **kwargs)


def test_each_domain_produces_explicit_and_implicit_feedback(env_id):
    env = gym.make(env_id, **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    domain = env.unwrapped.sim.domain
    wanted = {Signal.RATING, *domain.implicit_signals, *([domain.text_signal] if domain.text_signal else [])}
    kinds = set()
    for _ in range(20_000):  # until every kind was generated (a calibrated shop's reviews are rare)
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        kinds.update(info["feedback"]["kind"].tolist())
        if terminated or truncated:
            env.reset()
        if wanted <= set(np.flatnonzero(env.unwrapped.sim.channel.generated).tolist()):
            break
    kinds.update(np.flatnonzero(env.unwrapped.sim.channel.generated).tolist())
    explicit = {k for k in kinds if envs.signals.SIGNALS.info(k).explicit}
    implicit = kinds - explicit
    assert Signal.RATING in explicit
    assert implicit == set(domain.implicit_signals)
    if domain.text_signal is not None:
        assert domain.text_signal in explicit


def test_text_feedback_matches_the_rating_it_accompanies():
    env = gym.make("FeedbackRec/Video-v0", rating_propensity=1.0, delays="none", **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    pairs = 0
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        records = as_records(info["feedback"])
        texts = records[records["kind"] == Signal.COMMENT]
        ratings = {r["impression_id"]: r["value"] for r in records[records["kind"] == Signal.RATING]}
        for text in texts:
            stars = ratings[text["impression_id"]]
            assert text["text_id"] // envs.feedback.PHRASINGS + 1 == stars
            assert envs.opinion_text(int(text["text_id"]))
            pairs += 1
        if terminated or truncated:
            env.reset()
    assert pairs > 20


@pytest.mark.parametrize("delay", [0, 1, 4])
def test_fixed_delays_arrive_at_the_configured_step(delay):
    env = gym.make(
        "FeedbackRec/Music-v0",
        delays={s: delay for s in ("play", "listen_fraction", "skip", "like", "rating")},
        **SMALL,
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    seen = 0
    for _ in range(400):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        records = as_records(info["feedback"])
        in_session = records[records["session_id"] == env.unwrapped.sim.session[0]]
        assert (in_session["step_arrived"] - in_session["step_shown"] == delay).all()
        assert (obs["feedback"][: len(records), 5] >= delay).all()
        seen += len(in_session)
        if terminated or truncated:
            env.reset()
    assert seen > 100


def test_users_return_with_their_late_feedback():
    env = gym.make("FeedbackRec/Ecommerce-v0", num_users=3, num_items=300)
    env.reset(seed=0)
    env.action_space.seed(0)
    returned = 0
    for _ in range(2000):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            _, info = env.reset()
            records = as_records(info["feedback"])
            assert (records["user_id"] == info["user_id"]).all()
            returned += len(records)
    assert returned > 0


def test_reset_with_a_seed_restarts_the_world():
    env = gym.make("FeedbackRec/News-v0", **SMALL)
    env.reset(seed=5)
    env.action_space.seed(5)
    before = env.unwrapped.sim.population.interests.copy()
    for _ in range(300):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    assert not np.array_equal(env.unwrapped.sim.population.interests, before)
    env.reset(seed=5)
    env.action_space.seed(5)
    assert np.array_equal(env.unwrapped.sim.population.interests, before)
    assert env.unwrapped.sim.channel.pending == 0


def test_step_after_the_session_ended_asks_for_reset():
    env = gym.make("FeedbackRec/News-v0", **SMALL).unwrapped
    env.reset(seed=0)
    env.action_space.seed(0)
    while True:
        _, _, terminated, truncated, _ = env.step([0, 1, 2, 3, 4])
        if terminated or truncated:
            break
    with pytest.raises(RuntimeError, match="call reset"):
        env.step([0, 1, 2, 3, 4])


@pytest.mark.parametrize("choice_model", ["mnl", "cascade"])
def test_oracle_beats_random(env_id, choice_model):
    """Paired on the same evaluation seed (same users, same session budgets): the oracle's per-session
    return exceeds random's by more than the 95% confidence half-width of the mean difference."""

    def make():
        return gym.make_vec(
            env_id, num_envs=60, vectorization_mode="vector_entry_point", choice_model=choice_model, **SMALL
        )

    task = Task.of(make())
    oracle = evaluate(OracleAgent(task), make(), seed=11, regret=False)  # its regret is 0: tests/test_oracle.py
    random = evaluate(RandomAgent(task, seed=0), make(), seed=11)
    gain = np.array(oracle["episode_rewards"]) - np.array(random["episode_rewards"])
    assert gain.mean() > 1.96 * gain.std(ddof=1) / np.sqrt(len(gain))
    assert random["regret_mean"] > 0


def test_cascade_clicks_favour_the_top_slots():
    env = gym.make("FeedbackRec/News-v0", choice_model="cascade", position_bias=0.5, **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    positions = np.zeros(5)
    for _ in range(3000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if info["choice"] >= 0:
            positions[info["choice"]] += 1
        if terminated or truncated:
            env.reset()
    assert (np.diff(positions) < 0).all()


def test_render_ansi_lists_the_candidates():
    env = gym.make("FeedbackRec/Music-v0", render_mode="ansi", **SMALL)
    env.reset(seed=0)
    env.action_space.seed(0)
    text = env.render()
    assert text.count("\n") == 20 and "candidates" in text


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_hidden_problem_of_some_sessions_is_theirs_of_every_session_bit_for_bit(env_id):
    """``choice_problem(sessions)`` and ``candidate_utility(sessions)`` compute only the sessions asked for (the
    streaming evaluation's sample), in their order, and each exactly as when every session is computed."""
    env = gym.make_vec(env_id, num_envs=12, vectorization_mode="vector_entry_point", **SMALL)
    env.reset(seed=5)
    rng, task = np.random.default_rng(0), Task.of(env)
    for _ in range(3):  # sessions a few steps in, with fatigue and drift
        env.step(np.argsort(rng.random((12, task.num_candidates)), 1)[:, : task.slate_size])
    sim, sessions = env.unwrapped.sim, np.array([7, 0, 3, 11])
    every, some = sim.choice_problem(), sim.choice_problem(sessions)
    for name in ("utility", "reward", "no_click", "temperature"):
        np.testing.assert_array_equal(getattr(some, name), getattr(every, name)[sessions], err_msg=name)
    assert some[4:] == every[4:]  # the choice model's settings
    np.testing.assert_array_equal(sim.candidate_utility(sessions), sim.candidate_utility()[sessions])


@pytest.mark.parametrize("sessions", [np.array([0, 12]), np.array([-1]), np.array([[1]]), np.array([0.5])])
def test_sessions_out_of_the_batch_are_refused_naming_them(sessions):
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=12, vectorization_mode="vector_entry_point", **SMALL)
    env.reset(seed=5)
    with pytest.raises(ValueError, match=r"sessions=.*expected a 1-d array of integer indices in \[0, 12\)"):
        env.unwrapped.sim.choice_problem(sessions)
