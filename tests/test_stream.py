"""The streaming evaluation (``agents/stream.py``): its scores on synthetic streams whose AUC, precision and loss are
known, and what a learner's run reports."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import norm

import envs  # noqa: F401  (registers the environments)
from agents.base import Task, Transition
from agents.checkpoint import Checkpoints
from agents.labels import Immediate
from agents.linucb import LinUCBAgent
from agents.loop import Warmup, run_online
from agents.oracle import regret
from agents.popularity import PopularityAgent
from agents.random import RandomAgent
from agents.stream import (
    METRIC_NAMES,
    ONLINE_NAMES,
    PURPOSES,
    StreamingEvaluation,
    eventual_labels,
    session_sample,
    window_scores,
)
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import Signal


def test_a_window_is_scored_as_counted_by_hand():
    """Positives at 0.9, 0.6, 0.4 and negatives at 0.7, 0.3, 0.2, 0.1: 10 of the 12 pairs ranked right; positives
    at ranks 1, 3, 4, so the average precision is (1 + 2/3 + 3/4) / 3."""
    p = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1])
    y = np.array([True, True, True, False, False, False, False])
    nll = -(sum(math.log(v) for v in p[:3]) + sum(math.log(1 - v) for v in p[3:])) / 7
    scores = window_scores({"click": p, "rating": np.array([4.0, 2.0, 5.0])},
                           {"click": y, "rating": np.array([5.0, np.nan, 3.0])})  # fmt: skip
    assert scores == pytest.approx({
        "auc_click": 10 / 12, "pr_auc_click": (1 + 2 / 3 + 3 / 4) / 3, "nll_click": nll,
        "rmse_rating": math.sqrt((1 + 4) / 2),
    })  # fmt: skip


def test_a_window_of_one_class_has_a_loss_but_no_auc():
    assert window_scores({"click": np.array([0.2, 0.4])}, {"click": np.zeros(2, bool)}).keys() == {"nll_click"}


class Stream:
    """A learner whose scores separate positives by ``separation`` standard deviations: a positive's score is
    ``N(separation, 1)``, a negative's ``N(0, 1)``, so its AUC is ``Φ(separation / √2)``; ``purchase`` is a
    random guess (AUC 1/2). Labels: a click (and a purchase) record for each positive in the step's eventual
    feedback. Slot 0 of every slate is masked (a repeat): scored wrongly on purpose, and never counted."""

    def __init__(self, separation: float, sessions: int = 50, k: int = 4, seed: int = 0) -> None:
        self.separation, self.sessions, self.k = separation, sessions, k
        self.rng = np.random.default_rng(seed)
        self.ids = 0

    def transition(self) -> Transition:
        b, k = self.sessions, self.k
        positive = self.rng.random((b, k)) < 0.3
        self.score = self.separation * positive + self.rng.standard_normal((b, k))
        self.score[:, 0] = np.where(positive[:, 0], -10.0, 10.0)  # the masked slot, ranked backwards
        ids = self.ids + np.arange(b)
        self.ids += b
        rows, pos = np.nonzero(positive)
        records = np.zeros(2 * len(rows), FEEDBACK_DTYPE)
        records["impression_id"], records["position"] = np.tile(ids[rows], 2), np.tile(pos, 2)
        records["kind"] = np.repeat([Signal.CLICK, Signal.PURCHASE], len(rows))
        records["value"] = 1.0
        masked = np.zeros((b, k), bool)
        masked[:, 0] = True
        info = {"impression_id": ids, "masked_positions": masked}
        action = np.tile(np.arange(k), (b, 1))
        return Transition({}, action, np.ones(b), np.zeros(b, bool), np.zeros(b, bool), info, {}, eventual=records)

    def predict(self, obs, action, sessions=None) -> dict[str, np.ndarray]:
        return {"click": 1 / (1 + np.exp(-self.score)), "purchase": self.rng.random(self.score.shape)}


@pytest.mark.parametrize("separation", [0.0, 1.0, 2.5])
def test_the_streamed_auc_is_that_of_the_synthetic_stream(separation):
    curves = []
    log = type("Writer", (), {"add_scalar": lambda self, *point: curves.append(point)})()
    stream, evaluation = Stream(separation), StreamingEvaluation(every=10, regret_every=0, log=log)
    for _ in range(40):
        evaluation.after_step(stream, stream.transition())
    summary = evaluation.summary()
    windows = evaluation.windows["auc_click"]
    assert [(step, value) for tag, value, step in curves if tag == "stream/auc_click"] == list(
        zip((500, 1000, 1500, 2000), windows, strict=True)
    )  # one point per window, at the user-steps streamed
    assert summary["stream_auc_click"] == pytest.approx(np.mean(windows)) and len(set(windows)) == 4
    assert summary["stream_auc_click"] == pytest.approx(norm.cdf(separation / math.sqrt(2)), abs=0.02)
    assert summary["stream_auc_purchase"] == pytest.approx(0.5, abs=0.03)
    assert summary["stream_pr_auc_click"] > summary["stream_pr_auc_purchase"] - 0.05 + 0.2 * separation
    assert summary["online_reward_mean"] == 1.0 and summary["online_regret_mean"] is None


def test_a_learner_without_predictions_has_no_streaming_scores():
    evaluation, stream = StreamingEvaluation(every=2, regret_every=0), Stream(1.0)
    for _ in range(4):
        evaluation.after_step(RandomAgent.__new__(RandomAgent), stream.transition())
    assert all(evaluation.summary()[name] is None for name in METRIC_NAMES)


@pytest.mark.parametrize("every", [-1, 1.5, True])
def test_a_bad_stride_is_refused_naming_it(every):
    with pytest.raises(ValueError, match=r"eval.stream_every=.*expected an integer >= 0"):
        StreamingEvaluation(every)


# ---------------------------------------------------------------------------- a learner's run


def make_env():
    return gym.make_vec("FeedbackRec/News-v0", num_envs=8, vectorization_mode="vector_entry_point", num_items=150,
                        num_users=40, num_candidates=10, slate_size=3)  # fmt: skip


def linucb_run(steps: int = 240, evaluation: StreamingEvaluation | None = None, checkpoints=None, warmup=None):
    env = make_env()
    agent = LinUCBAgent(Task.of(env), seed=0, label=Immediate())
    logging = None if warmup is None else Warmup(warmup[0](Task.of(env), seed=0), warmup[1])
    run_online(agent, env, steps, seed=3, progress=False, stream=evaluation, checkpoints=checkpoints, warmup=logging)
    return agent


def test_a_learners_run_reports_every_streaming_and_online_metric_without_changing_what_it_learns():
    evaluation = StreamingEvaluation(every=5, regret_every=2)
    streamed, plain = linucb_run(evaluation=evaluation), linucb_run()
    summary = evaluation.summary()
    assert {name for name, value in summary.items() if value is not None} == {
        "stream_auc_click",
        "stream_pr_auc_click",
        "stream_nll_click",
        "stream_rmse_rating",
        *ONLINE_NAMES,
    }  # fmt: skip  (LinUCB predicts no purchase, and rates by its rater model; news has no purchases)
    assert 0.0 <= summary["stream_auc_click"] <= 1.0 and summary["online_regret_mean"] > 0
    assert evaluation.regret_steps == 8 * 15 and evaluation.user_steps == 240  # every other of 30 ticks
    np.testing.assert_array_equal(streamed.model.gram, plain.model.gram)  # the evaluation perturbs nothing


def test_a_resumed_run_reports_what_an_uninterrupted_one_does(tmp_path):
    first, resumed, uninterrupted = (StreamingEvaluation(every=4, regret_every=3) for _ in range(3))
    linucb_run(120, first, Checkpoints(tmp_path))
    linucb_run(240, resumed, Checkpoints(tmp_path))
    linucb_run(240, uninterrupted)
    assert resumed.summary() == uninterrupted.summary()


class Logged(RandomAgent):
    """A random logging policy that keeps the slates it served."""

    def __init__(self, task, seed: int = 0) -> None:
        super().__init__(task, seed)
        self.served = []

    def act(self, obs, explore: bool = True):
        self.served.append(super().act(obs, explore))
        return self.served[-1]


def test_a_warmup_is_served_by_the_logging_policy_learnt_from_and_never_scored():
    evaluation, plain = StreamingEvaluation(every=5, regret_every=2), StreamingEvaluation(every=5, regret_every=2)
    warmed, cold = linucb_run(evaluation=evaluation, warmup=(Logged, 80)), linucb_run(evaluation=plain)
    assert warmed.clock == (80 + 240) // 8  # the learner observed the logged ticks and the streamed ones
    assert evaluation.user_steps == 240 and evaluation.ticks == 30 and evaluation.regret_steps == 8 * 15
    assert (warmed.model.gram != cold.model.gram).any()  # it learnt from the logged slates
    assert evaluation.summary() != plain.summary()  # and streams from where the warmup left it
    zero = StreamingEvaluation(every=5, regret_every=2)
    linucb_run(evaluation=zero, warmup=(Logged, 0))
    assert zero.summary() == plain.summary()  # a warmup of 0 steps is no warmup


def crashing(task, fatal: int = 6) -> PopularityAgent:
    """A popularity logging policy whose process dies when it is asked for its ``fatal``-th slate."""
    policy, act, asked = PopularityAgent(task), PopularityAgent.act, []

    def act_or_die(obs, explore: bool = True):
        asked.append(True)
        if len(asked) == fatal:
            raise KeyboardInterrupt
        return act(policy, obs, explore)

    policy.act = act_or_die
    return policy


def test_the_logged_slates_are_the_policys_and_a_warmup_resumed_from_inside_continues_it(tmp_path):
    env = make_env()
    agent, policy = LinUCBAgent(Task.of(env), seed=0, label=Immediate()), Logged(Task.of(env))
    shown = []
    observe = agent.observe
    agent.observe = lambda transition: shown.append(transition.action) or observe(transition)
    run_online(agent, env, 16, seed=3, progress=False, warmup=Warmup(policy, 24))
    assert len(policy.served) == 3 and len(shown) == 5
    for logged, seen in zip(policy.served, shown[:3], strict=True):
        np.testing.assert_array_equal(logged, seen)
    first, resumed, uninterrupted = (StreamingEvaluation(every=4, regret_every=3) for _ in range(3))
    env, checkpoints = make_env(), Checkpoints(tmp_path)
    agent = LinUCBAgent(Task.of(env), seed=0, label=Immediate())
    with pytest.raises(KeyboardInterrupt):  # at tick 6 of the warmup's 10
        run_online(agent, env, 200, seed=3, progress=False, stream=first, checkpoints=checkpoints, checkpoint_every=8,
                   warmup=Warmup(crashing(Task.of(env)), 80))  # fmt: skip
    assert checkpoints.latest().name.endswith("40") and first.user_steps == 0
    again = linucb_run(200, resumed, checkpoints, warmup=(PopularityAgent, 80))
    straight = linucb_run(200, uninterrupted, warmup=(PopularityAgent, 80))
    assert resumed.summary() == uninterrupted.summary()
    np.testing.assert_array_equal(again.model.gram, straight.model.gram)


def test_a_bad_warmup_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"train.warmup_steps=-8; expected an integer >= 0"):
        Warmup(RandomAgent.__new__(RandomAgent), -8)


# ---------------------------------------------------------------------------- the sampled sessions


class EverySession(StreamingEvaluation):
    """The regret as measured before sessions were sampled: the oracle's problem of every session."""

    def before_step(self, env, action) -> None:
        if self.regret_every and self.ticks % self.regret_every == 0:
            paid = regret(env.unwrapped.sim.choice_problem(), np.asarray(action))
            self.regret, self.regret_steps = self.regret + float(paid.sum()), self.regret_steps + len(paid)


def test_a_batch_no_larger_than_the_samples_is_measured_whole_bit_for_bit():
    """8 sessions with the default samples of 128, with samples of 8 and with samples off (0) stream the same
    figures as every session measured the way it was before sampling."""
    runs = [
        EverySession(every=5, regret_every=2, regret_sessions=0, stream_sessions=0),
        StreamingEvaluation(every=5, regret_every=2),
        StreamingEvaluation(every=5, regret_every=2, regret_sessions=8, stream_sessions=8, seed=9),
        StreamingEvaluation(every=5, regret_every=2, regret_sessions=0, stream_sessions=0),
    ]
    for evaluation in runs:
        linucb_run(evaluation=evaluation)
    assert runs[0].summary()["online_regret_mean"] > 0
    assert all(evaluation.summary() == runs[0].summary() for evaluation in runs[1:])
    assert all(evaluation.windows == runs[0].windows for evaluation in runs[1:])


def test_samples_are_drawn_by_seed_purpose_and_tick():
    draws = {(seed, purpose, tick): session_sample(5, 1024, seed, purpose, tick).tolist()
             for seed in (0, 1) for purpose in PURPOSES for tick in (0, 1)}  # fmt: skip
    assert len({tuple(d) for d in draws.values()}) == len(draws)  # each key its own sample
    assert all(d == sorted(set(d)) and len(d) == 5 for d in draws.values())  # distinct sessions, increasing
    assert session_sample(5, 1024, 1, "stream", 1).tolist() == draws[1, "stream", 1]  # the same key, the same
    assert session_sample(0, 1024, 0, "regret", 0) is None and session_sample(5, 5, 0, "regret", 0) is None


def test_the_regret_of_a_sample_is_that_of_its_sessions():
    env = make_env()
    obs, _ = env.reset(seed=3)
    action = RandomAgent(Task.of(env), seed=0).act(obs)
    evaluation = StreamingEvaluation(every=0, regret_every=1, regret_sessions=3, seed=4)
    evaluation.before_step(env, action)
    sessions = session_sample(3, 8, 4, "regret", 0)
    expected = regret(env.unwrapped.sim.choice_problem(), action)[sessions]
    assert evaluation.regret_steps == 3 and evaluation.regret == float(expected.sum()) and expected.sum() > 0


def test_the_predictions_of_a_sample_are_held_with_their_sessions_labels():
    env = make_env()
    agent, evaluation = (
        LinUCBAgent(Task.of(env), seed=0, label=Immediate()),
        StreamingEvaluation(5, 0, stream_sessions=3, seed=2),
    )
    obs, _ = env.reset(seed=3)
    agent.attach(env)
    for tick in range(2):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        evaluation.after_step(agent, step)
        sessions = session_sample(3, 8, 2, "stream", tick)
        shown = ~step.info["masked_positions"][sessions]
        predicted = agent.predict({key: value[sessions] for key, value in obs.items()}, action[sessions])
        labels = eventual_labels(step, action.shape[1])
        for head in ("click", "rating"):
            np.testing.assert_array_equal(evaluation._predicted[head][tick], predicted[head][shown])
            np.testing.assert_array_equal(evaluation._labels[head][tick], labels[head][sessions][shown])
        agent.observe(step)
        obs = step.next_obs
    assert evaluation.user_steps == 16  # the reward of every session


def test_a_resumed_sampled_run_reports_what_an_uninterrupted_one_does(tmp_path):
    first, resumed, uninterrupted = (
        StreamingEvaluation(every=4, regret_every=3, regret_sessions=3, stream_sessions=5, seed=1) for _ in range(3)
    )
    linucb_run(120, first, Checkpoints(tmp_path))
    linucb_run(240, resumed, Checkpoints(tmp_path))
    linucb_run(240, uninterrupted)
    assert resumed.summary() == uninterrupted.summary() and uninterrupted.regret_steps == 3 * 10
    whole = StreamingEvaluation(every=4, regret_every=3)
    linucb_run(240, whole)
    assert whole.summary()["online_regret_mean"] != uninterrupted.summary()["online_regret_mean"]


@pytest.mark.parametrize("key", ["regret_sessions", "stream_sessions"])
@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_a_bad_sample_size_is_refused_naming_it(key, value):
    with pytest.raises(ValueError, match=rf"eval.{key}={value!r}; expected an integer >= 0 \(sessions a tick; 0: all"):
        StreamingEvaluation(5, 2, **{key: value})
