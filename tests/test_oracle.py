"""The oracle's slate optimisation: exact under the multinomial logit, no exchange improves it under the cascade,
and on small instances both equal the best of every possible slate."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the environments)
from agents.assortment import EMPTY, best_cascade_slates, best_mnl_slates, cascade_value, mnl_value
from agents.base import Task, top_k
from agents.evaluation import evaluate
from agents.oracle import OracleAgent
from agents.random import RandomAgent
from tests.conftest import ENV_IDS

M, K = 6, 3


def every_slate(mask: bool) -> np.ndarray:
    """``(n, K)`` every ordered slate of distinct candidates out of ``M`` (with empty slots when masking)."""
    options = list(range(M)) + ([EMPTY] if mask else [])
    shown = (s for s in itertools.product(options, repeat=K))
    return np.array([s for s in shown if len([x for x in s if x >= 0]) == len({x for x in s if x >= 0})])


def instance(rng: np.random.Generator):
    """Utilities, a no-click utility and a temperature as the simulator draws them, and rewards that are
    sometimes zero or negative (an item that is better left unshown)."""
    u, u0, tau = rng.normal(0, 1, (1, M)), rng.normal(1, 0.3, 1), rng.uniform(0.6, 1.2)
    reward = rng.gamma(1.0, 1.0, (1, M)) * (rng.random((1, M)) < 0.8) - 0.2 * (rng.random((1, M)) < 0.2)
    return np.exp(u / tau), np.exp(u0 / tau), 1 / (1 + np.exp(-(u - u0) / tau)), reward, rng.uniform(0.5, 1.0)


@pytest.mark.parametrize("misclick", [0.0, 0.01])
@pytest.mark.parametrize("mask", [True, False])
def test_the_optimised_slates_equal_the_best_of_every_slate(mask, misclick):
    rng = np.random.default_rng(7)
    slates = every_slate(mask)
    n = len(slates)
    for _ in range(60):
        weight, no_click, attraction, reward, bias = instance(rng)
        many = (np.repeat(weight, n, 0), np.repeat(no_click, n), np.repeat(reward, n, 0))
        best_mnl = mnl_value(slates, *many, K, misclick).max()
        mnl = best_mnl_slates(weight, no_click, reward, K, misclick, mask)
        assert mnl_value(mnl, weight, no_click, reward, K, misclick)[0] == pytest.approx(best_mnl, rel=1e-9)
        best_cascade = cascade_value(slates, np.repeat(attraction, n, 0), many[2], bias, misclick).max()
        cascade = best_cascade_slates(attraction, reward, K, bias, misclick, mask)
        assert cascade_value(cascade, attraction, reward, bias, misclick)[0] == pytest.approx(best_cascade, rel=1e-9)


def test_a_poor_item_is_left_out_under_the_logit_when_masking_is_allowed():
    """The best item earns 3 a click, a more attractive one 0.2: showing it takes clicks from the best one."""
    weight, no_click, reward = np.array([[1.0, 4.0]]), np.array([1.0]), np.array([[3.0, 0.2]])
    assert best_mnl_slates(weight, no_click, reward, 2).tolist() == [[0, EMPTY]]
    assert sorted(best_mnl_slates(weight, no_click, reward, 2, mask=False)[0].tolist()) == [0, 1]


def test_slates_are_batched_row_by_row():
    rng = np.random.default_rng(3)
    rows = [instance(rng) for _ in range(5)]
    weight, no_click, attraction, reward = (np.concatenate([r[i] for r in rows]) for i in range(4))
    together = best_mnl_slates(weight, no_click, reward, K, 0.01)
    alone = np.concatenate([best_mnl_slates(*(r[i] for i in (0, 1, 3)), K, 0.01) for r in rows])
    np.testing.assert_array_equal(together, alone)
    together = best_cascade_slates(attraction, reward, K, 0.8, 0.01)
    alone = np.concatenate([best_cascade_slates(r[2], r[3], K, 0.8, 0.01) for r in rows])
    np.testing.assert_array_equal(together, alone)


# ---------------------------------------------------------------------------- the oracle on every domain


def step_reward(env, snapshot, slates: np.ndarray, replicate: int) -> np.ndarray:
    """``(B,)`` the reward of one step of ``slates`` from the saved state, with the draws of ``replicate``."""
    env.unwrapped.load_state_dict(snapshot)
    env.unwrapped.np_random = np.random.default_rng(replicate)
    return env.step(slates)[1]


def simple_slates(problem, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    """Slates a reasonable non-optimising policy would show, from the same hidden state."""
    click = 1 / (1 + np.exp(-(problem.utility - problem.no_click[:, None]) / problem.temperature[:, None]))
    best = (click * problem.reward).argmax(1)
    return {
        "top utility": top_k(problem.utility, k),
        "top reward if chosen": top_k(problem.reward, k),
        "top expected reward": top_k(click * problem.reward, k),
        "the best item alone": np.tile(best[:, None], (1, k)),  # the rest masked as repeats
        "random": top_k(rng.random(problem.utility.shape), k),
    }


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_no_simple_policy_beats_the_oracle_per_step(env_id):
    """From the same states and the same draws, the oracle's slates earn at least what simpler slates earn, in
    one step, on every domain (a paired comparison over sessions and replicated draws)."""
    env = gym.make_vec(env_id, num_envs=256, vectorization_mode="vector_entry_point", delays="none", num_items=500)
    oracle, rng = OracleAgent(Task.of(env)), np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(3):  # users a few steps into their sessions, with fatigue and drift
        obs = env.step(top_k(rng.random((256, 20)), 5))[0]
    oracle.attach(env)
    snapshot, problem = env.unwrapped.state_dict(), env.unwrapped.sim.choice_problem()
    best = oracle.act(obs)
    paid = np.stack([step_reward(env, snapshot, best, r) for r in range(12)])
    for name, slates in simple_slates(problem, rng, 5).items():
        gain = paid - np.stack([step_reward(env, snapshot, slates, r) for r in range(12)])
        margin = 2.0 * gain.std() / np.sqrt(gain.size)
        assert gain.mean() >= -margin, f"{name} earns {-gain.mean():.3f} ± {margin:.3f} more than the oracle"


def test_an_evaluation_without_regret_runs_the_same_sessions():
    """Skipping the regret (as the runner does for its baselines) changes no other metric: the per-step best slate
    is computed without touching the environment's random stream."""

    def make():
        return gym.make_vec("FeedbackRec/Ecommerce-v0", num_envs=20, vectorization_mode="vector_entry_point")

    task = Task.of(make())
    regrets = []
    for agent in (RandomAgent(task, seed=0), OracleAgent(task)):
        full, quick = (evaluate(agent, make(), seed=7, regret=flag) for flag in (True, False))
        regrets.append(full.pop("regret_mean"))
        assert quick.pop("regret_mean") is None and full == quick
    assert regrets[0] > 0 and regrets[1] == pytest.approx(0.0, abs=1e-9)  # the oracle's slates are the best


# ---------------------------------------------------------------------------- the vectorised solve, bit for bit


def reference_values(slates, rows, attraction, weight, no_click, reward, k, bias, misclick, model):
    """The values of ``(n, k)`` slates shown in sessions ``rows`` ``(n,)``, as first written."""
    shown, index = slates >= 0, np.maximum(slates, 0)
    r = np.take_along_axis(reward[rows], index, 1) * shown
    if model == "mnl":
        w = np.take_along_axis(weight[rows], index, 1) * shown
        return (1.0 - misclick) * ((w * r).sum(1) / (no_click[rows] + w.sum(1))) + misclick / k * r.sum(1)
    click = np.take_along_axis(attraction[rows], index, 1) * shown * bias ** np.arange(k)
    reached = np.cumprod(np.concatenate([np.ones((len(slates), 1)), 1.0 - click[:, :-1]], axis=1), axis=1)
    return (1.0 - misclick) * (reached * click * r).sum(1) + misclick / k * r.sum(1)


def reference_improve(slates, value, m, mask):
    """Every session, every round: the best exchange (built one by one) while one raises the value."""
    slates, fillers = slates.copy(), np.array(list(range(m)) + [EMPTY] * mask)
    while True:
        k, moves = slates.shape[1], []
        for p, q in itertools.combinations(range(k), 2):
            moves.append(slates[:, None].copy())
            moves[-1][:, 0, [p, q]] = slates[:, [q, p]]
        repeat = (fillers >= 0) & (slates[:, :, None] == fillers).any(1)  # (B, F): the filler is shown already
        for p in range(k):
            moves.append(np.repeat(slates[:, None], len(fillers), 1))
            moves[-1][:, :, p] = np.where(repeat, slates[:, p, None], fillers)
        moves = np.concatenate(moves, 1)  # (B, X, k)
        values = value(moves.reshape(-1, k), np.repeat(np.arange(len(slates)), moves.shape[1]))
        values = values.reshape(len(slates), -1)
        pick, current = values.argmax(1), value(slates, np.arange(len(slates)))
        up = values.max(1) > current + 1e-12
        if not up.any():
            return slates
        slates[up] = moves[up, pick[up]]


def reference_slates(attraction, weight, no_click, reward, k, bias, misclick, mask, model):
    """The solve as first written: Dinkelbach's iteration over every session until all are fixed points (logit),
    the better of two exchange searches (cascade)."""
    batch, m = reward.shape

    def value(slates, rows=None, misclick=misclick):
        rows = np.arange(batch) if rows is None else rows
        return reference_values(slates, rows, attraction, weight, no_click, reward, k, bias, misclick, model)

    if model == "cascade":
        found = []
        for priority in (reward, attraction * reward):
            start = np.argsort(-priority, axis=1, kind="stable")[:, :k]
            start = np.where(np.take_along_axis(reward, start, 1) > 0, start, EMPTY) if mask else start
            found.append(reference_improve(start, value, m, mask))
        return np.where((value(found[1]) > value(found[0]))[:, None], found[1], found[0])
    z, best, best_value = np.zeros(batch), np.full((batch, k), EMPTY), np.full(batch, -np.inf)
    for _ in range(32):
        gain = weight * (reward - z[:, None])
        order = np.argsort(-gain, axis=1, kind="stable")[:, :k]
        chosen = np.where(np.take_along_axis(gain, order, 1) > 0, order, EMPTY) if mask else order
        better = value(chosen) > best_value + 1e-12
        best[better], best_value[better] = chosen[better], value(chosen)[better]
        fixed_point = value(chosen, misclick=0.0)
        if np.all(np.abs(fixed_point - z) <= 1e-12 * np.maximum(1.0, np.abs(z))):
            break
        z = fixed_point
    return reference_improve(best, value, m, mask) if misclick else best


@pytest.mark.parametrize("model", ["mnl", "cascade"])
def test_the_vectorised_solve_gives_the_reference_slates_bit_for_bit(model):
    """300 random batches (1-20 sessions, 1-8 slots of up to 24 candidates, with and without masking and
    misclicks, a third with rounded utilities and rewards, so ties must be broken as the reference does)."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        b, k = int(rng.integers(1, 21)), int(rng.integers(1, 9))
        m, mask, misclick = int(rng.integers(k, 25)), bool(rng.random() < 0.7), float(rng.choice([0.0, 0.01, 0.2]))
        u, u0, tau = rng.normal(0, 1, (b, m)), rng.normal(1, 0.3, (b, 1)), rng.uniform(0.6, 1.2, (b, 1))
        reward = rng.gamma(1.0, 1.0, (b, m)) * (rng.random((b, m)) < 0.8) - 0.2 * (rng.random((b, m)) < 0.2)
        if trial % 3 == 0:
            u, reward = np.round(u), np.round(2 * reward) / 2
        top = np.maximum(u.max(1, keepdims=True), u0)
        weight, no_click = np.exp((u - top) / tau), np.exp((u0 - top) / tau)[:, 0]
        attraction, bias = 1 / (1 + np.exp(-(u - u0) / tau)), rng.uniform(0.5, 1.0)
        expected = reference_slates(attraction, weight, no_click, reward, k, bias, misclick, mask, model)
        if model == "mnl":
            found = best_mnl_slates(weight, no_click, reward, k, misclick, mask)
        else:
            found = best_cascade_slates(attraction, reward, k, bias, misclick, mask)
        np.testing.assert_array_equal(found, expected, err_msg=f"trial {trial}")
        slates = rng.integers(EMPTY, m, (b, k))
        value = (
            mnl_value(slates, weight, no_click, reward, k, misclick)
            if model == "mnl"
            else cascade_value(slates, attraction, reward, bias, misclick)
        )
        args = (attraction, weight, no_click, reward, k, bias, misclick, model)
        np.testing.assert_array_equal(value, reference_values(slates, np.arange(b), *args), err_msg=f"trial {trial}")
