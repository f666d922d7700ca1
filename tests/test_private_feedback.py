"""The estimators of locally private feedback are unbiased: property tests over many seeded draws of the
simulator's own mechanisms, each with a tolerance of four standard errors of the estimator."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from agents.private_feedback import ReportMechanism, ReportStatistics
from envs.domains.news import NEWS
from envs.draws import draw_key
from envs.feedback import FEEDBACK_DTYPE
from envs.privacy import categorical_response, laplace_report, randomised_response
from envs.signals import SIGNALS, Signal
from tests.test_privacy import private_run

KEYS = [draw_key(np.random.default_rng([7, seed])) for seed in range(20_000)]
STARS = (1.0, 2.0, 3.0, 4.0, 5.0)


def sample(mechanism, *args) -> np.ndarray:
    return np.array([mechanism(*args, key, 0)[0] for key in KEYS])


def mechanism(epsilon: float) -> ReportMechanism:
    return ReportMechanism(epsilon, tuple(int(s) for s in NEWS.implicit_signals), STARS)


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("bit", [0.0, 1.0])
def test_inverted_randomised_response_is_unbiased_for_the_true_bit(epsilon, bit):
    m = mechanism(epsilon)
    reported = sample(randomised_response, bit, epsilon)
    p = m.bit_keep
    standard_error = math.sqrt(p * (1 - p)) / (2 * p - 1) / math.sqrt(len(KEYS))
    assert abs(m.unbiased_bits(reported).mean() - bit) < 4 * standard_error
    if epsilon < 3:  # the reports themselves are biased toward 1/2, far beyond that tolerance
        assert abs(reported.mean() - bit) > 4 * standard_error


def category_variance(m: ReportMechanism, g: np.ndarray, true: int) -> float:
    """``Var ĝ`` for true category ``true``: ``Var g(y) / (p − q)²`` under the mechanism's report distribution."""
    chance = np.full(m.categories, m.category_other)
    chance[true] = m.category_keep
    mean = chance @ g
    return float(chance @ (g - mean) ** 2) / (m.category_keep - m.category_other) ** 2


@pytest.mark.parametrize("epsilon", [0.25, 1.0])
@pytest.mark.parametrize("true", [0, 1, 4, 5])
def test_the_ratings_credit_estimated_from_k_ary_reports_is_unbiased(epsilon, true):
    """``(stars − 3)·[rated]`` from the private category (0 = not rated) of a 1..5 scale."""
    m = mechanism(epsilon)
    reported = sample(categorical_response, true, m.categories, epsilon)
    stars = np.where(reported == 0, 0.0, np.asarray(STARS)[np.maximum(reported - 1, 0)])
    g = np.concatenate([[0.0], np.asarray(STARS) - 3.0])
    tolerance = 4 * math.sqrt(category_variance(m, g, true) / len(KEYS))
    assert abs(m.rating_credit(stars).mean() - g[true]) < tolerance
    np.testing.assert_array_equal(m.category(stars), reported)


def test_category_shares_estimated_from_k_ary_reports_are_unbiased_and_sum_to_one():
    m, epsilon = mechanism(0.5), 0.5
    shares = np.array([0.7, 0.02, 0.03, 0.05, 0.08, 0.12])
    rng = np.random.default_rng(3)
    true = rng.choice(len(shares), size=len(KEYS), p=shares)
    reported = np.array(
        [categorical_response(int(c), m.categories, epsilon, key, 0)[0] for c, key in zip(true, KEYS, strict=True)]
    )
    estimate = m.frequencies(np.bincount(reported, minlength=m.categories))
    seen = m.category_other + (m.category_keep - m.category_other) * shares  # the reports' own shares
    standard_error = np.sqrt(seen * (1 - seen) / len(KEYS)) / (m.category_keep - m.category_other)
    assert (np.abs(estimate - shares) < 4 * standard_error).all(), (estimate, shares)
    assert estimate.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("value", "clipped"), [(40.0, 40.0), (5000.0, 1250.0)])
def test_laplace_reports_are_kept_unbiased_for_the_clipped_value_only(value, clipped):
    """Left as they are: unbiased for the value clipped into the declared range, so biased by ``clip(v) − v``
    for a value outside it."""
    m, epsilon = mechanism(0.5), 0.5
    reports = sample(laplace_report, value, 0.0, 1250.0, epsilon)
    kept = m.unbiased_values(reports, np.full(len(reports), Signal.DWELL_SECONDS))
    np.testing.assert_array_equal(kept, reports.astype(np.float64))
    standard_error = math.sqrt(2) * 1250.0 / epsilon / math.sqrt(len(KEYS))
    assert abs(kept.mean() - clipped) < 4 * standard_error
    assert (abs(kept.mean() - value) < 4 * standard_error) == (value == clipped)


def test_the_mechanism_is_read_from_the_worlds_public_settings():
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=2, vectorization_mode="vector_entry_point", num_items=50)
    assert ReportMechanism.of(env) is None
    env = gym.make_vec(
        "FeedbackRec/News-v0", num_envs=2, vectorization_mode="vector_entry_point", num_items=50, privacy_epsilon=2.0
    )
    m = ReportMechanism.of(env)
    assert m.epsilon == pytest.approx(2.0 / (len(NEWS.implicit_signals) + 1)) and m.star_values == STARS
    assert m.signals == tuple(int(s) for s in NEWS.implicit_signals)
    with pytest.raises(ValueError, match="epsilon=0"):
        ReportMechanism(0, m.signals, STARS)


def test_the_unbiased_click_rate_of_a_private_world_matches_its_true_click_rate():
    """End to end: every shown item's click report in a private News run, inverted with the mechanism read from the
    world, averages to the share of shown items truly consumed (``info["choice"]``)."""
    epsilon = 4.0
    records, choice, _ = private_run(epsilon, steps=20)
    env = gym.make_vec(
        "FeedbackRec/News-v0", num_envs=1, vectorization_mode="vector_entry_point", privacy_epsilon=epsilon
    )
    m = ReportMechanism.of(env)
    clicks = records[records["kind"] == Signal.CLICK]
    truth = (choice >= 0).sum() / (choice.size * 5)
    p = m.bit_keep
    standard_error = math.sqrt(p * (1 - p)) / (2 * p - 1) / math.sqrt(len(clicks))
    unbiased = m.unbiased_records(clicks)["value"]
    assert abs(unbiased.mean() - truth) < 4 * standard_error, (unbiased.mean(), truth)
    assert abs(clicks["value"].mean() - truth) > 20 * standard_error  # what a naive learner would count
    rated = m.unbiased_records(records[records["kind"] == Signal.RATING])
    assert np.isfinite(rated["value"]).all() and SIGNALS.binary[Signal.CLICK]


def test_the_posterior_of_a_reported_rating_follows_the_report_at_large_epsilon_and_the_prior_at_small():
    prior = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])  # not rated, then 1..5 stars alike
    rated, mean = mechanism(12.0).posterior_stars(np.array([4.0, 0.0]), prior)
    assert rated[0] == pytest.approx(1.0, abs=1e-3) and mean[0] == pytest.approx(4.0, abs=1e-3)
    assert rated[1] == pytest.approx(0.0, abs=1e-3)  # reported "not rated"
    rated, mean = mechanism(1e-3).posterior_stars(np.array([5.0]), prior)
    assert rated[0] == pytest.approx(0.5, abs=1e-3) and mean[0] == pytest.approx(3.0, abs=1e-2)


def test_the_prior_shares_trust_the_reports_as_far_as_their_information_goes():
    truth = np.array([0.7, 0.02, 0.03, 0.05, 0.08, 0.12])
    for epsilon, far in ((0.25, False), (6.0, True)):
        m = mechanism(epsilon)
        reported = m.category_other + (m.category_keep - m.category_other) * truth  # the reports' expected shares
        shares = m.shares(reported * 20_000)
        assert shares.sum() == pytest.approx(1.0) and (shares >= 0).all()
        closer_to_truth = np.abs(shares - truth).sum() < np.abs(shares - 1 / 6).sum()
        assert closer_to_truth == far, (epsilon, shares)


def reports_of(kind: int, values: np.ndarray) -> np.ndarray:
    records = np.zeros(len(values), FEEDBACK_DTYPE)
    records["kind"], records["value"] = kind, values
    return records


@pytest.mark.parametrize("epsilon", [0.25, 1.0])
def test_the_posterior_of_reported_bits_has_the_truths_mean_and_less_error_than_the_unbiased_estimate(epsilon):
    """Bits with base rate 0.15 through randomised response: the base rate learnt from the reports is the truth's,
    the posterior means average to it (the tower rule), and their squared error is below the unbiased estimate's."""
    m, rng = mechanism(epsilon), np.random.default_rng(3)
    truth = (rng.random(len(KEYS)) < 0.15).astype(float)
    reported = np.array([randomised_response(x, epsilon, key, 0)[0] for x, key in zip(truth, KEYS, strict=True)])
    statistics = ReportStatistics(m.categories)
    statistics.observe(m, reports_of(Signal.CLICK, reported))
    p = m.bit_keep
    standard_error = math.sqrt(p * (1 - p)) / (2 * p - 1) / math.sqrt(len(KEYS))
    assert abs(statistics.base_rate(Signal.CLICK, m) - 0.15) < 4 * standard_error
    posterior = m.posterior_values(reported, Signal.CLICK, statistics)
    assert abs(posterior.mean() - 0.15) < 4 * standard_error
    assert np.mean((posterior - truth) ** 2) < np.mean((m.unbiased_values(reported, Signal.CLICK) - truth) ** 2)


def test_the_linear_estimate_of_laplace_reports_shrinks_by_the_share_of_their_variance_that_is_signal():
    kind = Signal.LISTEN_FRACTION
    m, rng = ReportMechanism(2.0, (int(kind),), STARS), np.random.default_rng(4)
    truth = rng.beta(2.0, 2.0, len(KEYS))  # in the signal's range [0, 1]: Var = 0.05
    reported = np.array([laplace_report(x, 0.0, 1.0, 2.0, key, 0)[0] for x, key in zip(truth, KEYS, strict=True)])
    statistics = ReportStatistics(m.categories)
    statistics.observe(m, reports_of(kind, reported))
    mean, gain = statistics.linear_estimate(kind, m.laplace_scale(kind))
    assert m.laplace_scale(kind) == 0.5 and mean == pytest.approx(0.5, abs=0.02)
    assert gain == pytest.approx(0.05 / (0.05 + 2 * 0.5**2), abs=0.03)
    estimate = m.posterior_values(reported, kind, statistics)
    assert np.mean((estimate - truth) ** 2) < 0.2 * np.mean((reported - truth) ** 2)


def test_the_posterior_credit_of_rating_reports_averages_to_the_true_credit_under_the_true_shares():
    m = mechanism(1.0)
    truth = np.array([0.7, 0.02, 0.03, 0.05, 0.08, 0.12])  # not rated, then 1..5 stars
    categories = np.random.default_rng(5).choice(6, len(KEYS), p=truth)
    reported = np.array(
        [categorical_response(c, 6, m.epsilon, key, 0)[0] for c, key in zip(categories, KEYS, strict=True)]
    )
    stars = np.where(reported == 0, 0.0, np.asarray(STARS)[np.maximum(reported - 1, 0)])
    statistics = ReportStatistics(m.categories)
    statistics.observe(m, reports_of(Signal.RATING, stars))
    credit = m.posterior_values(stars, Signal.RATING, statistics) - 3.0
    g = np.concatenate([[0.0], np.asarray(STARS) - 3.0])
    assert abs(credit.mean() - truth @ g) < 0.05  # shares learnt from 20,000 reports: close to the truth's
    assert np.abs(credit).max() < 2.0  # bounded by the stars, where the unbiased credit reaches ±9
    with pytest.raises(ValueError, match="unknown private_estimate 'exact'"):
        m.estimated_values(stars, Signal.RATING, "exact", statistics)


def test_the_credit_diagnostic_finds_the_slopes_each_estimate_gives_a_click():
    from experiments.private_credit import clean_slots, effective_weights, estimates, reports

    clean, kinds, weights, sim = clean_slots("News", 1500, seed=0)
    mechanism = ReportMechanism(1.0, kinds[:-1], tuple(sim.rating_scale.stars().tolist()))
    found = {
        name: effective_weights(clean, estimate, kinds, weights)[Signal.CLICK][0]
        for name, estimate in estimates(reports(clean, kinds, mechanism, seed=0), kinds, mechanism).items()
    }
    keep = mechanism.bit_keep
    assert found["unbiased"] == pytest.approx(1.0, abs=0.15)  # 1: unbiased
    assert found["naive"] == pytest.approx(2 * keep - 1, abs=0.1)  # p − q: a reported bit as it comes
    assert 0 < found["posterior"] < found["naive"]  # shrunk toward the base rate
