"""The rater model on a synthetic rating stream with known biases and planted spammers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from agents.evaluation import spam_detection_auc
from agents.private_feedback import ReportMechanism
from agents.rater_feedback import RaterFeedback, rating_head_loss
from agents.raters import Raters
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import Signal
from models.network import HEADS

STARS = np.arange(1.0, 6.0)


def rating_stream(seed: int = 0, users: int = 300, items: int = 200, per_user: int = 20, spam: float = 0.1):
    """Ratings ``round(1 + 4 q_i + b_u + N(0, 0.5²))`` clipped to 1..5 by honest users, uniform stars by spammers,
    in random order: ``(users, items, stars)`` and the truth ``(bias, is_spam, quality)``."""
    rng = np.random.default_rng(seed)
    bias, is_spam, quality = rng.normal(0, 0.6, users), rng.random(users) < spam, rng.random(items)
    u = np.repeat(np.arange(users), per_user)
    i = rng.integers(0, items, len(u))
    stars = np.clip(np.round(1 + 4 * quality[i] + bias[u] + rng.normal(0, 0.5, len(u))), 1, 5)
    stars[is_spam[u]] = rng.integers(1, 6, is_spam[u].sum())
    order = rng.permutation(len(u))
    return (u[order], i[order], stars[order]), (bias, is_spam, quality)


def learn(model: str, stream, users: int = 300, items: int = 200) -> Raters:
    """Feed the stream in 40 online batches, as a learner would."""
    raters = Raters(model, users, items, STARS)
    for batch in np.array_split(np.arange(len(stream[0])), 40):
        raters.observe(*(column[batch] for column in stream))
    raters.fit()
    return raters


def test_the_reliability_model_recovers_known_biases_and_flags_planted_spammers():
    stream, (bias, is_spam, _) = rating_stream()
    raters = learn("reliability", stream)
    honest = ~is_spam
    error = raters.bias[honest] - bias[honest]
    assert np.sqrt(np.mean(error**2)) < 0.4 * bias.std()  # most of the spread of biases explained
    assert np.corrcoef(raters.bias[honest], bias[honest])[0, 1] > 0.9
    assert roc_auc_score(is_spam, raters.spam_scores()) > 0.97
    flagged = raters.flagged()
    assert flagged[is_spam].mean() >= 0.9 and flagged[honest].mean() <= 0.02
    assert (
        raters.reliability(np.flatnonzero(is_spam)).mean()
        < 0.1
        < 0.8
        < raters.reliability(np.flatnonzero(honest)).mean()
    )


def test_the_reliability_model_finds_the_items_consensus_better_than_the_naive_mean():
    """Spammers pull a naive item mean toward 3; the reliability-weighted, de-biased consensus tracks quality."""
    stream, (_, _, quality) = rating_stream(spam=0.3)
    truth = 1 + 4 * quality
    errors = {m: np.sqrt(np.mean((learn(m, stream).consensus - truth) ** 2)) for m in ("naive", "reliability")}
    assert errors["reliability"] < 0.8 * errors["naive"], errors


def test_biases_are_shrunk_toward_the_population_for_users_with_few_ratings():
    (u, i, stars), _ = rating_stream(per_user=2, spam=0.0)
    raters = learn("reliability", (u, i, stars))
    raw = np.bincount(u, stars - raters.consensus[i], 300) / 2
    assert np.abs(raters.bias).mean() < 0.8 * np.abs(raw).mean()


def test_the_naive_model_trusts_every_rater_alike():
    stream, _ = rating_stream()
    raters = learn("naive", stream)
    users = np.arange(300)
    assert (raters.bias == 0).all() and (raters.reliability(users) == 1).all()
    assert raters.spam_scores() is None and spam_detection_auc(raters.spam_scores(), np.ones(300, bool)) is None
    np.testing.assert_array_equal(raters.clean(users[:3], users[:3], np.array([1.0, 2.0, 5.0])), [1.0, 2.0, 5.0])


def test_spam_detection_auc_scores_the_users_a_learner_has_judged():
    spam = np.array([True, False, False, True, False])
    assert spam_detection_auc(np.array([0.9, 0.1, 0.2, np.nan, 0.3]), spam) == 1.0  # the NaN user is not judged
    assert spam_detection_auc(np.array([0.1, 0.9, 0.2, 0.5, 0.3]), spam) == pytest.approx(
        1 / 3
    )  # 2 of 6 pairs ranked right
    assert spam_detection_auc(np.array([np.nan, 0.1, 0.2, np.nan, 0.3]), spam) is None  # no spammer among them


def test_clean_ratings_are_debiased_and_shrunk_toward_the_consensus_by_unreliability():
    stream, (_, is_spam, _) = rating_stream()
    raters = learn("reliability", stream)
    spammer, honest = np.flatnonzero(is_spam)[0], np.flatnonzero(~is_spam)[0]
    item = np.array([7, 7])
    clean = raters.clean(np.array([spammer, honest]), item, np.array([5.0, 5.0]))
    assert abs(clean[0] - raters.consensus[7]) < 0.1  # a spammer's five stars say nothing
    rho = raters.reliability(np.array([honest]))[0]
    assert clean[1] == pytest.approx(rho * (5.0 - raters.bias[honest]) + (1 - rho) * raters.consensus[7])


def test_a_learners_feedback_keeps_only_real_stars_and_weights_them_by_reliability():
    stream, _ = rating_stream()
    feedback = RaterFeedback("reliability", 300, 200)
    records = np.zeros(len(stream[0]), FEEDBACK_DTYPE)
    records["user_id"], records["item_index"], records["value"] = stream
    records["kind"] = Signal.RATING
    feedback.observe(records)
    feedback.raters.fit()
    users = np.array([0, 1])
    rating = torch.tensor([[4.0, 0.0], [2.0, 5.0]])
    labels, weights = feedback.rating_labels(
        {"rating": rating, "rating_mask": torch.ones(2, 2, dtype=torch.bool)}, users
    )
    assert labels["rating_mask"].tolist() == [[True, False], [True, True]]  # 0: a private "not rated" report
    assert labels["rating"][0, 0].item() == pytest.approx(4.0 - feedback.raters.bias[0], abs=1e-5)
    assert weights[1, 1].item() == pytest.approx(feedback.raters.reliability(np.array([1]))[0], abs=1e-6)


def test_under_privacy_a_report_of_stars_trains_the_rating_head_as_a_posterior_and_depth_goes_unlabelled():
    feedback = RaterFeedback("reliability", 2, 2)
    feedback.mechanism = ReportMechanism(1.0, (int(Signal.CLICK),), tuple(STARS))
    feedback.reports.categories += 10.0  # uniform report counts
    rating = torch.tensor([[5.0, 1.0]])
    labels, weights = feedback.rating_labels(
        {"rating": rating, "rating_mask": torch.ones(1, 2, dtype=torch.bool)}, np.array([0])
    )
    shares = feedback.mechanism.shares(feedback.reports.categories)
    chance, mean = feedback.mechanism.posterior_stars(np.array([5.0, 1.0]), shares)
    assert 1.0 < labels["rating"][0, 1].item() < labels["rating"][0, 0].item() < 5.0  # pulled toward the mean
    assert labels["rating"][0].tolist() == pytest.approx(mean.tolist(), abs=1e-5)
    rho = feedback.raters.reliability(np.array([0]))[0]
    assert weights[0].tolist() == pytest.approx((rho * chance).tolist(), abs=1e-6)
    values = np.zeros((1, 2, len(Signal)))
    arrived = np.ones((1, 2, len(Signal)), bool)
    base = {"depth_mask": np.ones((1, 2), bool)}
    assert not feedback.labels(base, values, arrived, np.zeros(len(Signal)))["depth_mask"].any()


def test_the_huber_rating_loss_bounds_the_pull_of_a_wild_rating():
    outputs = torch.zeros(1, 2, len(HEADS), requires_grad=True)
    labels = {h: torch.zeros(1, 2) for h in HEADS} | {f"{h}_mask": torch.zeros(1, 2, dtype=torch.bool) for h in HEADS}
    labels |= {"rating": torch.tensor([[3.0, 3.0 + 2 * 10.0]]), "rating_mask": torch.ones(1, 2, dtype=torch.bool)}
    for loss, bounded in (("squared", False), ("huber", True)):
        grad = torch.autograd.grad(rating_head_loss(outputs, labels, 3.0, None, loss), outputs)[0]
        pull = grad[0, 1, HEADS.index("rating")].abs().item()
        assert (pull <= 0.5 / 2 + 1e-6) == bounded, (loss, pull)  # Huber: at most δ per item (mean over 2)


def test_unknown_models_and_losses_are_refused_naming_them():
    with pytest.raises(ValueError, match="unknown rater_model 'trusting'"):
        Raters("trusting", 3, 3, STARS)
    with pytest.raises(ValueError, match="unknown rating_loss 'cubic'"):
        rating_head_loss(torch.zeros(1, 1, len(HEADS)), {}, 3.0, None, "cubic")
