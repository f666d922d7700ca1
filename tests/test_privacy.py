"""Local privacy: the mechanisms against their formulas, every shown item reporting, and an attacker who sees
everything the agent sees and still cannot tell a click beyond what ε allows."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import envs
from envs.draws import draw_key
from envs.feedback import PHRASINGS, as_records
from envs.privacy import categorical_response, laplace_report, randomised_response, report_epsilon
from envs.signals import SIGNALS, Signal

KEYS = [draw_key(np.random.default_rng(seed)) for seed in range(40_000)]


def sample(mechanism, *args) -> np.ndarray:
    return np.array([mechanism(*args, key, 0)[0] for key in KEYS])


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 3.0])
def test_randomised_response_flips_each_bit_with_the_mechanisms_probability(epsilon):
    flip = 1 / (1 + math.exp(epsilon))
    margin = 4 * math.sqrt(flip * (1 - flip) / len(KEYS))
    assert abs(sample(randomised_response, 1.0, epsilon).mean() - (1 - flip)) < margin  # 1 → 0
    assert abs(sample(randomised_response, 0.0, epsilon).mean() - flip) < margin  # 0 → 1


@pytest.mark.parametrize(("value", "clipped"), [(40.0, 40.0), (-5.0, 0.0), (5000.0, 1250.0)])
def test_laplace_reports_are_centred_on_the_clipped_value_with_the_mechanisms_spread(value, clipped):
    low, high, epsilon = 0.0, 1250.0, 0.5
    scale = (high - low) / epsilon
    reports = sample(laplace_report, value, low, high, epsilon)
    assert abs(reports.mean() - clipped) < 4 * math.sqrt(2) * scale / math.sqrt(len(KEYS))
    assert reports.std() == pytest.approx(math.sqrt(2) * scale, rel=0.03)
    assert (reports < clipped).mean() == pytest.approx(0.5, abs=0.01)  # symmetric noise


def test_categorical_response_keeps_the_true_category_with_the_mechanisms_probability():
    epsilon, categories = 1.0, 6
    reports = sample(categorical_response, 2, categories, epsilon)
    keep = math.exp(epsilon) / (math.exp(epsilon) + categories - 1)
    counts = np.bincount(reports, minlength=categories) / len(KEYS)
    assert counts[2] == pytest.approx(keep, abs=0.01)
    np.testing.assert_allclose(np.delete(counts, 2), (1 - keep) / (categories - 1), atol=0.01)


# ---------------------------------------------------------------------------- what leaves a user


def private_run(epsilon: float | None, steps: int = 60, sessions: int = 256):
    """Reports and truth of every shown item of a News run with random slates: ``(records, choice)`` where
    ``choice[t, b]`` is the slot session ``b`` consumed at step ``t`` (-1: none)."""
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=sessions, vectorization_mode="vector_entry_point",
                       num_items=300, delays="none", item_features=None, privacy_epsilon=epsilon,
                       rating_propensity=0.5)  # fmt: skip
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    records, choice, impressions = [], [], []
    for _ in range(steps):
        _, _, _, _, info = env.step(np.argsort(rng.random((sessions, 20)), axis=1)[:, :5])
        records.append(env.unwrapped.delivered.arrived)
        choice.append(info["choice"])
        impressions.append(info["impression_id"])
    return np.concatenate(records), np.array(choice), np.array(impressions)


def item_reports(records: np.ndarray, choice: np.ndarray, impressions: np.ndarray):
    """One row per shown item: every value the agent received about it (by signal kind, with a present flag and
    the text's presence), and whether it was truly consumed. ``impressions`` ``(T, B)`` holds every shown slate's
    id; row ``5 n + p`` is slot ``p`` of the ``n``-th of them in that order."""
    kinds = [Signal.CLICK, Signal.DWELL_SECONDS, Signal.SHARE, Signal.RATING, Signal.COMMENT]
    ids = impressions.ravel()
    order = np.argsort(ids, kind="stable")
    found = np.minimum(np.searchsorted(ids[order], records["impression_id"]), len(ids) - 1)
    assert len(np.unique(ids)) == len(ids) and (ids[order][found] == records["impression_id"]).all()
    assert np.isin(records["kind"], kinds).all() and (records["position"] < 5).all()
    row = order[found] * 5 + records["position"]
    column_of = np.zeros(SIGNALS.count, np.int64)
    column_of[kinds] = np.arange(len(kinds))
    column = column_of[records["kind"]]
    assert len(np.unique(row * len(kinds) + column)) == len(records), "an item sent two reports of one kind"
    comment = records["kind"] == Signal.COMMENT
    features = np.zeros((len(ids) * 5, 2 * len(kinds)))
    features[row, 2 * column] = np.where(comment, records["text_id"] >= 0, records["value"])
    features[row, 2 * column + 1] = 1.0
    clicked = (choice.ravel()[:, None] == np.arange(5)).ravel()
    return features, clicked


def attack(features: np.ndarray, clicked: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A logistic-regression attacker fitted on half the items; its true and false positive rates on the other
    half at several thresholds, with the numbers of positives and negatives there."""
    half = len(clicked) // 2
    model = LogisticRegression(max_iter=1000).fit(features[:half], clicked[:half])
    score, truth = model.predict_proba(features[half:])[:, 1], clicked[half:]
    thresholds = [0.5, *np.quantile(score, [0.5, 0.8, 0.9, 0.95])]
    tpr = np.array([(score[truth] >= t).mean() for t in thresholds])
    fpr = np.array([(score[~truth] >= t).mean() for t in thresholds])
    return tpr, fpr, int(truth.sum()), int((~truth).sum())


def test_an_attacker_who_sees_all_an_items_reports_cannot_tell_a_click_beyond_epsilon():
    """ε-LDP per shown item bounds every test an attacker can run: TPR ≤ e^ε · FPR and 1 − FPR ≤ e^ε · (1 − TPR).
    Every shown item reports, so the presence of a record says nothing; the attacker uses every value and text."""
    epsilon = 1.0
    records, choice, impressions = private_run(epsilon)
    features, clicked = item_reports(records, choice, impressions)
    assert (features[:, 1::2][:, :4] == 1).all(), "a shown item did not send all its reports"
    tpr, fpr, positives, negatives = attack(features, clicked)
    slack = 3 * (np.sqrt(tpr * (1 - tpr) / positives) + math.exp(epsilon) * np.sqrt(fpr * (1 - fpr) / negatives))
    assert (tpr <= math.exp(epsilon) * fpr + slack).all(), (tpr, fpr)
    assert (1 - fpr <= math.exp(epsilon) * (1 - tpr) + slack).all(), (tpr, fpr)


def test_without_privacy_the_same_attacker_tells_every_click():
    """The attack has power: on unprivatised feedback it finds the clicks (the bound above fails by far)."""
    features, clicked = item_reports(*private_run(None, steps=20))
    tpr, fpr, _, _ = attack(features, clicked)
    assert tpr[0] > 0.99 and fpr[0] < 0.01  # at probability 0.5: every click found, almost no false alarm


def test_the_text_is_written_from_the_private_rating_and_the_budget_is_split_across_an_items_reports():
    records, _, _ = private_run(1.0, steps=30)
    ratings, comments = records[records["kind"] == Signal.RATING], records[records["kind"] == Signal.COMMENT]
    assert len(ratings) == len(comments)  # one text report per shown item, beside its rating report
    order = lambda r: np.lexsort((r["position"], r["impression_id"]))  # noqa: E731
    ratings, comments = ratings[order(ratings)], comments[order(comments)]
    written = comments["text_id"] >= 0
    assert written.any() and (ratings["value"][written] > 0).all()
    np.testing.assert_array_equal(comments["text_id"][written] // PHRASINGS + 1, ratings["value"][written])
    reports = len(envs.DOMAINS["news"].implicit_signals) + 1
    assert report_epsilon(1.0, reports) == pytest.approx(1.0 / reports)
    assert np.isin(ratings["value"], [0, 1, 2, 3, 4, 5]).all() and SIGNALS.info(Signal.RATING).high == 5


def test_private_runs_repeat_bit_for_bit():
    first, second = private_run(1.0, steps=5), private_run(1.0, steps=5)
    assert first[0].tobytes() == second[0].tobytes() and as_records(first[0]).dtype == second[0].dtype
