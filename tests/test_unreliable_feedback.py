"""Learners on unreliable feedback: the rater model inside the BERT agent and the linear bandit, the held-out
honest-rater metrics, and the tiny sweep of ``experiment=unreliable_feedback_small``."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from agents.base import Task, Transition, of_sessions
from agents.evaluation import evaluate
from agents.linucb import LinUCBAgent
from agents.random import RandomAgent
from envs.signals import Signal
from experiments import report
from tests.test_bert_agent import make_agent, make_env, train
from tests.test_experiments import sweep

UNRELIABLE = {"num_users": 30, "rating_propensity": 0.8, "spam_fraction": 0.3, "rating_bias_spread": 1.0}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("embeddings"))


class ConstantStars(RandomAgent):
    """Random slates; predicts ``stars`` for the top item of a slate, ``below`` (default: ``stars``) for the others."""

    def __init__(self, task, seed: int = 0, stars: float = 3.0, below: float | None = None) -> None:
        super().__init__(task, seed)
        self.stars, self.below = stars, stars if below is None else below

    def predict(self, obs, action, sessions=None):
        stars = np.full(of_sessions(obs, action, sessions)[1].shape, self.below)
        stars[:, 0] = self.stars
        return {"rating": stars}


def eval_env(**kwargs):
    return gym.make_vec(
        "FeedbackRec/News-v0", num_envs=16, vectorization_mode="vector_entry_point", num_items=120, delays="none",
        num_users=40, rating_propensity=0.8, **kwargs,
    )  # fmt: skip


def test_the_honest_rating_error_counts_honest_raters_only_and_needs_a_rating_prediction():
    clean = evaluate(ConstantStars(Task.of(eval_env()), seed=0), eval_env(spam_fraction=0.0), seed=5, regret=False)
    assert clean["rating_rmse_honest"] > 0
    everyone_spams = eval_env(spam_fraction=1.0)
    agent = ConstantStars(Task.of(everyone_spams), seed=0)
    assert evaluate(agent, everyone_spams, seed=5, regret=False)["rating_rmse_honest"] is None
    assert (
        evaluate(RandomAgent(Task.of(everyone_spams), 0), eval_env(), seed=5, regret=False)["rating_rmse_honest"]
        is None
    )


def test_the_honest_rating_error_is_the_rmse_of_the_prediction_against_the_given_stars():
    """Predicting 3 and 4 stars for the same sessions: ``rmse(4)² − rmse(3)² = 7 − 2 · mean rating``, exactly when the
    error covers every rating given (no spammers here) and nothing else."""
    env = eval_env(spam_fraction=0.0)
    three, four = (
        evaluate(ConstantStars(Task.of(env), seed=0, stars=s), env, seed=5, regret=False) for s in (3.0, 4.0)
    )
    assert three["rating_mean"] == four["rating_mean"]
    difference = four["rating_rmse_honest"] ** 2 - three["rating_rmse_honest"] ** 2
    assert difference == pytest.approx(7 - 2 * three["rating_mean"], abs=1e-6)  # the mean is float32
    wild_below = evaluate(ConstantStars(Task.of(env), seed=0, below=100.0), env, seed=5, regret=False)
    assert wild_below["rating_rmse_honest"] > 10 * three["rating_rmse_honest"]  # each rating meets its own slot


@pytest.mark.parametrize("privacy", [None, 2.0])
def test_the_bert_agent_with_the_reliability_model_learns_raters_and_flags_spammers(cache_dir, privacy):
    env = make_env(**UNRELIABLE, privacy_epsilon=privacy)
    naive, reliable = (make_agent(env, cache_dir, rater_model=m, rating_loss="huber") for m in ("naive", "reliability"))
    for agent in (naive, reliable):
        losses = [loss for loss in train(agent, env, 60) if "rating_loss" in loss]
        assert losses and all(np.isfinite(loss["rating_loss"]) for loss in losses)
    assert naive.spam_scores() is None
    scores = reliable.spam_scores()
    assert scores.shape == (30,) and np.isfinite(scores).sum() > 0
    assert reliable.raters.raters.logged > 0 and (privacy is None) == (reliable.raters.mechanism is None)
    rated = np.flatnonzero(reliable.raters.raters.rated > 0)
    assert np.abs(reliable.raters.raters.bias[rated]).max() > 0  # biases are learnt
    predicted = reliable.predict(*_shown(env))["rating"]
    assert ((predicted >= 1) & (predicted <= 5)).all()


def _shown(env):
    obs, _ = env.reset(seed=9)
    return obs, np.tile(np.arange(3), (env.num_envs, 1))


def test_the_linear_bandit_credits_ratings_shrunk_by_their_raters_reliability():
    env = make_env(**UNRELIABLE)
    agent = LinUCBAgent(Task.of(env), rater_model="reliability")
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    cleaned = []
    for _ in range(20):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        raw = step.arrived_feedback()
        credited, _ = agent.credit(step)
        rated = (raw["kind"] == Signal.RATING) & (raw["value"] > 0)
        users, items = raw["user_id"][rated].astype(np.int64), raw["item_index"][rated].astype(np.int64)
        expected = agent.raters.raters.clean(users, items, raw["value"][rated].astype(np.float64))
        np.testing.assert_allclose(credited["value"][rated], expected, rtol=1e-6)
        cleaned.extend(credited["value"][rated] - raw["value"][rated])
        obs = step.next_obs
    assert np.abs(cleaned).max() > 0.1  # biases and reliabilities learnt along the way change the credit


@pytest.mark.parametrize("estimate", ["posterior", "unbiased"])
def test_the_linear_bandit_credits_private_reports_by_their_estimates(estimate):
    env = make_env(**UNRELIABLE, privacy_epsilon=2.0)
    naive, reliable = (
        LinUCBAgent(Task.of(env), rater_model="naive"),
        LinUCBAgent(Task.of(env), rater_model="reliability", private_estimate=estimate),
    )
    obs, _ = env.reset(seed=0)
    for agent in (naive, reliable):
        agent.attach(env)
    action = naive.act(obs)
    step = Transition.of(env, obs, action, env.step(action))
    (raw, raw_credit), (estimated, credit) = naive.credit(step), reliable.credit(step)
    clicks = raw["kind"] == Signal.CLICK
    mechanism, statistics = reliable.raters.mechanism, reliable.raters.reports
    expected = {
        "unbiased": mechanism.unbiased_bits(raw["value"][clicks]),
        "posterior": mechanism.bit_posterior(raw["value"][clicks], statistics.base_rate(Signal.CLICK, mechanism)),
    }[estimate]
    np.testing.assert_allclose(estimated["value"][clicks], expected)
    assert not np.allclose(raw_credit, credit)
    assert "rating" in reliable.predict(obs, action) and reliable.hyperparameters()["private_estimate"] == estimate


@pytest.mark.slow
def test_the_tiny_unreliable_feedback_sweep_runs_and_reports_the_new_metrics(tmp_path):
    result = sweep(tmp_path, experiment="unreliable_feedback_small")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = report.load_jobs(tmp_path)
    assert len(jobs) == 8 and all(job["metrics"] is not None for job in jobs)
    for job in jobs:
        metrics, settings = job["metrics"], job["overrides"]
        assert metrics["rating_rmse_honest"] > 0
        judged = settings["agent.rater_model"] == "reliability" and settings["env.spam_fraction"] == "0.3"
        assert (metrics["spam_detection_auc"] is not None) == judged, settings
    text = report.report(tmp_path).read_text()
    assert "rating_rmse_honest" in text and "spam_detection_auc" in text
    assert json.loads((jobs[0]["dir"] / "metrics.json").read_text()).keys() >= {"normalized_score", "ctr"}
