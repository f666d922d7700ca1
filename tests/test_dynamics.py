"""The user dynamics each leave a measurable trace in what the environment reports: fatigue lowers the
utility of what was just consumed, boredom ends sessions long before the time budget, spam raters rate at
random, and misclicks land on a random slot. Checked through the public vector env (``info["utility"]``,
``info["choice"]``, the delivered records, ``candidate_utility``) with fixed seeds and margins of several
standard errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.signals import Signal


def make_env(num_envs: int, **kwargs):
    settings = {"num_items": 300, "num_users": 1000, "delays": "none", **kwargs}
    return gym.make_vec("FeedbackRec/News-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **settings)


def worst_slates(env, obs) -> np.ndarray:
    """The ``k`` candidates of lowest hidden utility, for every session."""
    k = len(env.unwrapped.single_action_space.nvec)
    return np.argsort(env.unwrapped.candidate_utility(), axis=1, kind="stable")[:, :k]


def random_slates(rng: np.random.Generator):
    def choose(env, obs) -> np.ndarray:
        k = len(env.unwrapped.single_action_space.nvec)
        return np.argsort(rng.random(obs["candidates"].shape), axis=1)[:, :k]

    return choose


# ---------------------------------------------------------------- fatigue


def utility_changes(fatigue_weight: float, steps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """The same five items shown to 64 sessions step after step (every item is a candidate, interests do not
    drift, no misclicks). Returns the change of the hidden utility from one step to the next of the item
    consumed in the first (``(n,)``), and of every item when nothing was consumed (``(m,)``)."""
    env = make_env(64, num_items=20, num_candidates=20, num_users=200, drift_rate=0.0, misclick_rate=0.0,
                   fatigue_weight=fatigue_weight)  # fmt: skip
    obs, _ = env.reset(seed=0)
    after_click, after_none, before = [], [], None
    for _ in range(steps):
        slots = np.argsort(obs["candidates"], axis=1)[:, :5]  # the slots of items 0..4, wherever they are
        obs, _, terminated, truncated, info = env.step(slots)
        if before is not None:
            utility, choice, going_on = before
            change = info["utility"] - utility
            clicked = going_on & (choice >= 0)
            after_click.append(change[clicked, choice[clicked]])
            after_none.append(change[going_on & (choice < 0)].ravel())
        before = info["utility"], info["choice"], ~(terminated | truncated)
    return np.concatenate(after_click), np.concatenate(after_none)


def test_fatigue_lowers_the_utility_of_what_was_just_consumed_and_wears_off():
    after_click, after_none = utility_changes(fatigue_weight=0.6)
    assert len(after_click) > 500 and len(after_none) > 500
    assert (after_click < 0).all() and after_click.mean() < -0.15
    assert (after_none >= -1e-6).all() and after_none.mean() > 0.01  # fatigue decays while nothing is consumed
    without = np.concatenate(utility_changes(fatigue_weight=0.0))
    np.testing.assert_allclose(without, 0.0, atol=1e-6)  # with drift off, fatigue is all that moves utility


# ---------------------------------------------------------------- boredom


def test_boredom_ends_sessions_long_before_their_time_budget():
    """Shown the worst candidates, users' mood sinks below their leave threshold within a few steps, while
    their time budget (patience, ~28 steps at the median) would last several times longer."""
    env = make_env(500, misclick_rate=0.0)
    obs, _ = env.reset(seed=0)
    users = obs["user_id"][:, 0]
    active, length, clicks = np.ones(500, bool), np.zeros(500, np.int64), np.zeros(500, np.int64)
    while active.any():
        obs, _, terminated, truncated, info = env.step(worst_slates(env, obs))
        length += active
        clicks += active & (info["choice"] >= 0)
        assert not (truncated & active).any()
        active &= ~terminated
    patience = env.unwrapped.sim.population.patience[users]
    assert np.median(patience) > 20
    assert length.mean() < 10 and (length < patience / 2).mean() > 0.8
    untouched = length[clicks == 0]  # mood falls by a fixed factor each step without a click
    assert len(untouched) >= 20 and untouched.max() <= 8


# ---------------------------------------------------------------- spam raters


def test_spam_raters_rate_uniformly_at_random_and_the_others_by_satisfaction():
    env = make_env(256, spam_fraction=0.5, rating_propensity=1.0)
    spam = env.unwrapped.sim.population.spam
    assert 0.4 < spam.mean() < 0.6
    choose = random_slates(np.random.default_rng(0))
    obs, _ = env.reset(seed=0)
    stars, utility, users = [], [], []
    for _ in range(40):
        obs, _, _, _, info = env.step(choose(env, obs))
        rated = env.unwrapped.delivered.arrived
        rated = rated[rated["kind"] == Signal.RATING]
        stars.append(rated["value"])
        utility.append(info["utility"][rated["env_index"], rated["position"]])
        users.append(rated["user_id"])
    stars, utility, by_spammer = np.concatenate(stars), np.concatenate(utility), spam[np.concatenate(users)]
    assert by_spammer.sum() > 2000 and (~by_spammer).sum() > 2000
    shares = np.bincount(stars[by_spammer].astype(np.int64), minlength=6)[1:] / by_spammer.sum()
    np.testing.assert_allclose(shares, 0.2, atol=0.04)  # ±5 standard errors
    assert abs(np.corrcoef(stars[by_spammer], utility[by_spammer])[0, 1]) < 0.1
    assert np.corrcoef(stars[~by_spammer], utility[~by_spammer])[0, 1] > 0.5


# ---------------------------------------------------------------- misclicks


def click_statistics(misclick_rate: float, steps: int = 30) -> tuple[float, np.ndarray]:
    """Click rate and the share of clicks per slot for 256 sessions shown their worst candidates."""
    env = make_env(256, misclick_rate=misclick_rate)
    obs, _ = env.reset(seed=0)
    choices = []
    for _ in range(steps):
        obs, _, _, _, info = env.step(worst_slates(env, obs))
        choices.append(info["choice"])
    choices = np.concatenate(choices)
    clicked = choices[choices >= 0]
    return len(clicked) / len(choices), np.bincount(clicked, minlength=5) / len(clicked)


def test_a_misclick_clicks_a_uniformly_random_slot():
    """Every step misclicks at rate 1: each step clicks, the slots evenly, although the worst item sits
    last; at rate 0.3 the click rate is the users' own plus 0.3 of the rest."""
    own_rate, own_slots = click_statistics(0.0)
    assert own_rate < 0.6 and own_slots[-1] > own_slots[0] + 0.1  # users' own clicks favour the better slots
    rate, slots = click_statistics(1.0)
    assert rate == 1.0
    np.testing.assert_allclose(slots, 0.2, atol=0.025)  # ±5 standard errors
    rate, _ = click_statistics(0.3)
    assert rate == pytest.approx(own_rate + 0.3 * (1 - own_rate), abs=0.04)
