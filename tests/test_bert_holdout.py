"""The BERT agent's held-out rating error is honest: recomputed here from the ratings the environment
delivered and the network's own predictions, and measured on ratings that never reached the network —
rewriting every held-out rating leaves every trained weight unchanged, bit for bit."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import tests.test_bert_agent
from agents.base import Task
from agents.bert import BertAgent
from agents.labels import Immediate
from agents.loop import run_online
from envs.signals import Signal
from models.network import predicted_stars

WORLD = {**tests.test_bert_agent.WORLD, "rating_propensity": 0.9}
SETTINGS = {**tests.test_bert_agent.FAST, "holdout_fraction": 0.3}
STEPS = 480  # user-steps: 60 batched steps of 8 sessions


class RatingLog(gym.vector.VectorWrapper):
    """Keeps every rating the environment delivers: ``(impression_id, position) → stars``."""

    def __init__(self, env) -> None:
        super().__init__(env)
        self.ratings: dict[tuple[int, int], float] = {}

    def step(self, actions):
        outcome = self.env.step(actions)
        for records in self.env.unwrapped.delivered:  # arrived, and released at a session start
            rated = records[records["kind"] == Signal.RATING]
            for impression, position, stars in rated[["impression_id", "position", "value"]].tolist():
                self.ratings[(impression, position)] = stars
        return outcome


def make_env(**kwargs):
    return gym.make_vec(
        "FeedbackRec/News-v0", num_envs=8, vectorization_mode="vector_entry_point", **{**WORLD, **kwargs}
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("embeddings"))


def trained(cache_dir: str, rewrite=None, watch=None) -> tuple[BertAgent, RatingLog]:
    """A BERT agent trained online for :data:`STEPS`; ``rewrite(replay)`` runs after every join of arrived
    feedback into its replay (to change stored ratings); ``watch(agent, env)`` before the training starts."""
    env = RatingLog(make_env())
    agent = BertAgent(Task.of(env), seed=0, label=Immediate(), cache_dir=cache_dir, **SETTINGS)
    if rewrite is not None:
        join = agent.replay.join

        def join_then_rewrite(*args, **kwargs):
            found = join(*args, **kwargs)
            rewrite(agent.replay)
            return found

        agent.replay.join = join_then_rewrite
    if watch is not None:
        watch(agent, env)
    assert run_online(agent, env, STEPS, progress=False) == STEPS
    return agent, env


def recomputed_errors(agent: BertAgent, env: RatingLog) -> dict[str, float]:
    """The held-out rating errors computed here: the stars the environment delivered for the impressions the
    agent holds out, against the network's predicted stars for them and against the agent's global mean."""
    replay = agent.replay
    held = np.flatnonzero(replay.holdout & (replay.serial >= 0))
    pairs = [(r, p) for r in held for p in range(replay.slate_size) if (replay.impression[r], p) in env.ratings]
    if not pairs:
        return {}
    rows, positions = np.array(pairs).T
    truth = np.array([env.ratings[(replay.impression[row], pos)] for row, pos in pairs])
    batch, _ = agent._training_batch(rows, replay.arrived_at[rows] >= 0)
    with torch.inference_mode():
        stars = predicted_stars(agent.net(batch), agent.global_rating).cpu().numpy()
    predicted = stars[np.arange(len(rows)), positions]
    return {
        "rating_rmse": np.sqrt(np.mean((predicted - truth) ** 2)),
        "rating_rmse_global_mean": np.sqrt(np.mean((agent.global_rating - truth) ** 2)),
        "rating_holdout_count": len(truth),
    }


def test_held_out_rating_rmse_is_what_the_network_predicts_for_the_delivered_held_out_ratings(cache_dir):
    """Each time the agent measures its held-out rating error during training, and once after it, the report
    equals the errors recomputed from the delivered stars and the network's predictions at that moment; what
    its updates return for logging is the latest measurement."""
    measured = []

    def watch(agent, env) -> None:
        measure = agent.rating_errors

        def measure_and_recompute():
            report = measure()
            measured.append((report, recomputed_errors(agent, env)))
            return report

        agent.rating_errors = measure_and_recompute

    agent, _ = trained(cache_dir, watch=watch)
    during = [report for report, _ in measured if report]
    agent.rating_errors()  # once more after training (recorded by the wrapper)
    assert during and agent.rating_report == during[-1], "no held-out rating error was logged during training"
    assert measured[-1][1]["rating_holdout_count"] >= 30, "too few held-out ratings for the check"
    for report, expected in measured:
        assert {key: report.get(key) for key in expected} == pytest.approx(expected, rel=1e-6)


def rewrite_ratings(held_out: bool, stars: float):
    """After each join: every arrived rating of held-out rows (or, with ``held_out=False``, of the
    trainable rows) is replaced by ``stars``."""

    def rewrite(replay) -> None:
        rows = replay.holdout if held_out else ~replay.holdout
        rated = rows[:, None] & (replay.serial >= 0)[:, None] & (replay.arrived_at[:, :, Signal.RATING] >= 0)
        replay.values[..., Signal.RATING][rated] = stars

    return rewrite


def learnt(agent: BertAgent) -> dict[str, torch.Tensor]:
    """Every trained weight: the recommender network, the sentiment head and the optimiser's moments."""
    weights = {f"net.{k}": v for k, v in agent.net.state_dict().items()}
    weights.update({f"sentiment.{k}": v for k, v in agent.sentiment.state_dict().items() if torch.is_tensor(v)})
    for index, moments in agent.optimizer.state_dict()["state"].items():
        weights.update({f"adam.{index}.{k}": v for k, v in moments.items()})
    return weights


def test_held_out_ratings_never_reach_the_network(cache_dir):
    """Two agents that see the same world, one with every held-out rating replaced by 1 star, end with the
    same weights and the same global mean rating; replacing the trainable ratings instead changes them
    (the comparison can see a rating that trains)."""
    reference, _ = trained(cache_dir)
    held = reference.replay.holdout[:, None] & (reference.replay.arrived_at[:, :, Signal.RATING] >= 0)
    assert (reference.replay.values[..., Signal.RATING][held] != 1.0).sum() >= 20, "too few held-out ratings"
    assert reference.updates > 20
    rewritten, _ = trained(cache_dir, rewrite_ratings(held_out=True, stars=1.0))
    assert rewritten.global_rating == reference.global_rating
    weights = learnt(reference)
    for name, value in learnt(rewritten).items():
        assert torch.equal(value, weights[name]), f"{name} depends on the held-out ratings"
    control, _ = trained(cache_dir, rewrite_ratings(held_out=False, stars=1.0))
    assert not torch.equal(learnt(control)["net.project.weight"], weights["net.project.weight"])
