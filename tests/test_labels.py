"""Label strategies on hand-built timelines: when a shown item trains, with which labels and weights, shared by
the replay learner (BERT agent) and the streaming one (LinUCB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the environments)
from agents.base import Task, Transition
from agents.examples import LIVE, ExampleLog
from agents.labels import (
    LABEL_STRATEGIES,
    Copy,
    ElapsedSampling,
    FakeNegativeCalibration,
    FakeNegativeWeighted,
    Immediate,
    LabelStrategy,
    Oracle,
    RealNegatives,
    Vanilla,
    Wait,
)
from agents.linear import interactions
from agents.linucb import LinUCBAgent
from agents.thompson import ThompsonAgent
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import Signal
from models.replay import FeedbackReplay


@dataclass(frozen=True)
class Reingest(LabelStrategy):
    """A test strategy: every impression at once as a frozen copy (kind 0, weight ``negative_weight``), and a
    frozen copy of a shown item whose positive arrives later (kind 1, weight 1)."""

    negative_weight: float = 1.0
    name: ClassVar[str] = "reingest"
    kinds: ClassVar[tuple[str, ...]] = ("at_show", "positive")

    @property
    def at_show(self) -> tuple[Copy, ...]:
        return (Copy(kind=0, delay=0, live=False),)

    def at_positive(self, elapsed):
        return Copy(kind=1, delay=0, live=False), elapsed > 0

    def weights(self, kind, probability, positive, delays):
        return np.where(kind[:, None] == 0, self.negative_weight, 1.0) * np.ones_like(probability)


def replay_with_one_impression() -> FeedbackReplay:
    replay = FeedbackReplay(8, 2, history_length=1, memory_size=2, num_users=2, item_stats=1)
    replay.add(np.array([7]), np.array([0]), np.array([[3, 4]]), np.full((1, 1), -1), 0, np.zeros(1, bool),
               np.zeros((1, 2, 1)))  # fmt: skip
    return replay


def click_record(impression: int, position: int, item: int) -> np.ndarray:
    record = np.zeros(1, FEEDBACK_DTYPE)
    record["impression_id"], record["position"], record["item_index"] = impression, position, item
    record["kind"], record["value"] = Signal.CLICK, 1.0
    return record


@pytest.mark.parametrize(("strategy", "first_trainable"), [(Immediate(), 0), (Wait(window=5), 5)])
def test_an_impression_trains_from_the_end_of_its_window_with_labels_corrected_in_place(strategy, first_trainable):
    replay = replay_with_one_impression()
    examples = ExampleLog(strategy, 16)
    examples.shown(np.array([0]), 0)
    trainable = [len(examples.trainable(t, replay.trainable)) for t in range(8)]
    assert trainable == [int(t >= first_trainable) for t in range(8)]
    (chosen,) = examples.trainable(7, replay.trainable)
    assert examples.as_of[chosen] == LIVE
    rows, first = replay.join(click_record(7, 1, 4), np.full(1, -1, np.int32), now=3)
    assert rows.tolist() == [0] and first.tolist() == [True]
    before, after = (replay.arrived_by(rows, np.array([t]))[0, 1, Signal.CLICK] for t in (2, LIVE))
    assert not before and after  # a copy read as of step 2 is silent; a live one sees the late click


def test_a_late_positive_is_reingested_as_a_copy_of_its_shown_item_only():
    replay = replay_with_one_impression()
    examples = ExampleLog(Reingest(), 16)
    examples.shown(np.array([0]), 0)
    examples.positives(np.array([0]), np.array([1]), np.array([3]), 3)
    examples.positives(np.array([0]), np.array([0]), np.array([0]), 3)  # arrived at once: no copy
    chosen = examples.trainable(3, replay.trainable)
    assert examples.slot[chosen].tolist() == [-1, 1] and examples.kind[chosen].tolist() == [0, 1]
    assert examples.as_of[chosen].tolist() == [0, 3] and examples.due(3).tolist() == [1]


def test_overwritten_impressions_leave_no_trainable_example():
    replay = FeedbackReplay(1, 1, history_length=1, memory_size=1, num_users=1, item_stats=1)
    examples = ExampleLog(Immediate(), 8)
    for step in range(2):
        serial = replay.add(np.array([step]), np.array([0]), np.array([[step]]), np.full((1, 1), -1), step,
                            np.zeros(1, bool), np.zeros((1, 1, 1)))  # fmt: skip
        examples.shown(serial, step)
    assert examples.ref[examples.trainable(1, replay.trainable)].tolist() == [1]


def test_a_log_too_small_for_the_copies_still_waiting_refuses_to_lose_one():
    examples = ExampleLog(RealNegatives(window=2, horizon=6), 8)
    for step in range(2):
        examples.shown(np.arange(2) + 2 * step, step)  # 2 impressions x 2 copies a step, due at 2..7
    with pytest.raises(ValueError, match=r"example capacity 8 is full of copies not yet trainable \(defer\(window=2"):
        examples.shown(np.array([4, 5]), 2)


def test_an_unknown_window_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"label window=-1; expected an integer >= 0"):
        Wait(window=-1)


# ---------------------------------------------------------------------------- LinUCB


def linucb_run(label: LabelStrategy, steps: int, clicks: dict[int, int]):
    """LinUCB on one session for ``steps`` steps, the same slate each step; ``clicks`` maps a step to the slate
    (by the step it was shown) whose item in slot 1 gets a click record delivered then."""
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=1, vectorization_mode="vector_entry_point", num_items=200,
                       num_users=20, delays="none")  # fmt: skip
    agent = LinUCBAgent(Task.of(env), seed=0, label=label)
    obs, _ = env.reset(seed=1)
    agent.attach(env)
    shown = []
    for step in range(steps):
        action = np.tile(np.arange(agent.task.slate_size), (1, 1))
        next_obs, reward, terminated, truncated, info = env.step(action)
        shown.append((int(info["impression_id"][0]), int(obs["candidates"][0, 1])))
        records = click_record(*shown[clicks[step]][:1], 1, shown[clicks[step]][1]) if step in clicks else None
        records = np.zeros(0, FEEDBACK_DTYPE) if records is None else records
        records["user_id"] = obs["user_id"][0, 0]
        agent.observe(Transition(obs, action, reward, terminated, truncated, info, next_obs, records))
        obs = next_obs
    return agent


def test_linucb_waits_for_the_window_then_holds_what_immediate_holds():
    every_step = {t: t for t in range(8)}  # each slate clicked at once
    waiting, eager = linucb_run(Wait(window=3), 3, every_step), linucb_run(Immediate(), 3, every_step)
    size = len(waiting.model.target)
    np.testing.assert_array_equal(waiting.model.gram, np.eye(size))  # nothing trainable before the window ends
    assert (eager.model.gram != np.eye(size)).any() and eager.model.target.any()
    waiting, same_slates = linucb_run(Wait(window=3), 8, every_step), linucb_run(Immediate(), 5, every_step)
    np.testing.assert_allclose(waiting.model.gram, same_slates.model.gram)  # slates 0-4 in, 5-7 still wait
    np.testing.assert_allclose(waiting.model.target, same_slates.model.target)


def test_linucb_corrects_a_live_copy_when_its_positive_arrives_after_the_window():
    on_time, late = linucb_run(Wait(window=1), 4, {0: 0}), linucb_run(Wait(window=1), 4, {3: 0})
    assert on_time.model.target.any()
    np.testing.assert_allclose(late.model.target, on_time.model.target)
    frozen = linucb_run(Reingest(negative_weight=1.0), 4, {3: 0})  # stays silent; the late positive is a copy
    np.testing.assert_allclose(frozen.model.target, on_time.model.target)
    assert np.trace(frozen.model.gram) > np.trace(on_time.model.gram)


def test_linucb_labels_a_fake_negative_zero_whatever_has_arrived():
    immediate, fake = linucb_run(Immediate(), 1, {0: 0}), linucb_run(FakeNegativeCalibration(), 1, {0: 0})
    assert immediate.model.target.any()
    np.testing.assert_allclose(fake.model.target, immediate.model.target)  # the positive copy only
    assert np.trace(fake.model.gram) > np.trace(immediate.model.gram)  # the negative copy is in, labelled 0


def test_linucb_applies_the_strategys_weights_and_positive_copies():
    silent = linucb_run(Reingest(negative_weight=0.0), 4, {0: 0})
    size = len(silent.model.target)
    np.testing.assert_array_equal(silent.model.gram, np.eye(size))  # zero-weight copies add nothing
    late = linucb_run(Reingest(negative_weight=0.0), 4, {2: 0})
    assert (late.model.gram != np.eye(size)).any() and late.model.target.any()  # the late positive's copy


# ---------------------------------------------------------------------------- the BERT agent


def bert_losses(label: LabelStrategy, tmp_path, steps: int = 6) -> list[dict[str, float]]:
    from agents.bert import BertAgent

    env = gym.make_vec("FeedbackRec/News-v0", num_envs=8, vectorization_mode="vector_entry_point", num_items=120,
                       num_users=60, num_candidates=10, slate_size=3, delays="none")  # fmt: skip
    agent = BertAgent(Task.of(env), label=label, encoder="tiny", cache_dir=str(tmp_path), batch_size=8, dim=8,
                      hidden=16, memory_size=4, holdout_fraction=0.0, device="cpu")  # fmt: skip
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    losses = []
    for _ in range(steps):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        agent.observe(step)
        next_obs = step.next_obs
        losses.append(agent.update())
        obs = next_obs
    return [loss for loss in losses if loss]


def test_the_bert_agent_weighs_each_copy_as_its_strategy_says(tmp_path):
    weighted = bert_losses(Reingest(negative_weight=1.0), tmp_path)
    silent = bert_losses(Reingest(negative_weight=0.0), tmp_path)
    assert weighted and all(loss["click_loss"] > 0 for loss in weighted)
    assert silent and all(loss["click_loss"] == 0 and loss["value_loss"] == 0 for loss in silent)


# ---------------------------------------------------------------------------- the published strategies

WINDOW, HORIZON = 5, 20
P = np.array([[0.2, 0.5, 0.7]])
"""The learner's probability of a positive for the three shown items of the timeline."""


def timeline(strategy: LabelStrategy) -> tuple[FeedbackReplay, ExampleLog]:
    """One slate of three items shown at step 0: item 0's positive arrives at step 3 (inside the window), item 1's
    at step 8 (after it), item 2 is a real negative; the example log as of step 30."""
    replay = FeedbackReplay(8, 3, history_length=1, memory_size=2, num_users=1, item_stats=1)
    replay.add(np.array([7]), np.array([0]), np.array([[3, 4, 5]]), np.full((1, 1), -1), 0, np.zeros(1, bool),
               np.zeros((1, 3, 1)))  # fmt: skip
    examples = ExampleLog(strategy, 16)
    examples.shown(np.array([0]), 0)
    for step, slot in ((3, 0), (8, 1)):
        rows, first = replay.join(click_record(7, slot, 3 + slot), np.full(1, -1, np.int32), now=step)
        examples.positives(replay.serial[rows[first]], np.array([slot]), np.array([step]), step)
    return replay, examples


def copies_and_labels(strategy: LabelStrategy, now: int = 30) -> list[tuple[int, str, int, list[int]]]:
    """``(slot, kind, start, labels)`` of every copy trainable at ``now``, its labels read as the BERT agent reads
    them (as of ``min(as_of, now)``, items outside the copy's slot masked -1)."""
    replay, examples = timeline(strategy)
    out = []
    for i in examples.trainable(now, replay.trainable):
        seen = replay.arrived_by(np.array([0]), np.array([min(examples.as_of[i], now)]))[0].any(-1)
        covered = (examples.slot[i] < 0) | (examples.slot[i] == np.arange(3))
        out.append((int(examples.slot[i]), strategy.kinds[examples.kind[i]], int(examples.start[i]),
                    np.where(covered, seen, -1).astype(int).tolist()))  # fmt: skip
    return out


STRATEGIES = {
    "oracle": Oracle(),
    "vanilla": Vanilla(),
    "immediate": Immediate(),
    "wait": Wait(window=WINDOW),
    "fnw": FakeNegativeWeighted(),
    "fnc": FakeNegativeCalibration(),
    "es_dfm": ElapsedSampling(window=WINDOW),
    "defer": RealNegatives(window=WINDOW, horizon=HORIZON),
}
EXPECTED_COPIES = {
    "oracle": [(-1, "eventual", 0, [1, 1, 0])],  # the learners read eventual labels: see the oracle tests below
    "vanilla": [(-1, "frozen", 0, [0, 0, 0])],  # silence at step 0, never corrected
    "immediate": [(-1, "live", 0, [1, 1, 0])],  # corrected in place
    "wait": [(-1, "live", WINDOW, [1, 1, 0])],
    "fnw": [(-1, "negative", 0, [0, 0, 0]), (0, "positive", 3, [1, -1, -1]), (1, "positive", 8, [-1, 1, -1])],
    "es_dfm": [(-1, "window", WINDOW, [1, 0, 0]), (1, "late_positive", 8, [-1, 1, -1])],
    "defer": [
        (-1, "window", WINDOW, [1, 0, 0]),  # item 1 a fake negative, item 2 a real one
        (-1, "real_negative", HORIZON, [1, 1, 0]),  # weighs only item 2 (see the weights)
        (0, "positive", 3, [1, -1, -1]),  # a positive in the window, duplicated
        (1, "positive", 8, [-1, 1, -1]),  # the delayed positive
    ],
}
EXPECTED_COPIES["fnc"] = EXPECTED_COPIES["fnw"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_each_strategy_schedules_its_copies_with_their_labels(name):
    assert sorted(copies_and_labels(STRATEGIES[name])) == sorted(EXPECTED_COPIES[name])
    assert type(STRATEGIES[name]) is LABEL_STRATEGIES[name]


def test_a_fake_negative_stays_silent_when_its_positive_arrives_at_once_and_a_frozen_copy_sees_it():
    seen = {}
    for strategy in (FakeNegativeWeighted(), Vanilla()):
        replay, examples = replay_with_one_impression(), ExampleLog(strategy, 16)
        examples.shown(np.array([0]), 0)
        rows, first = replay.join(click_record(7, 1, 4), np.full(1, -1, np.int32), now=0)
        examples.positives(replay.serial[rows[first]], np.array([1]), np.array([0]), 0)
        chosen = examples.trainable(0, replay.trainable)
        arrived = replay.arrived_by(np.zeros(len(chosen), np.int64), np.minimum(examples.as_of[chosen], 0)).any(-1)
        seen[strategy.name] = {
            strategy.kinds[examples.kind[i]]: a.tolist() for i, a in zip(chosen, arrived, strict=True)
        }
    assert seen == {
        "fnw": {"negative": [False, False], "positive": [False, True]},
        "vanilla": {"frozen": [False, True]},
    }


def test_a_window_copy_is_not_trainable_before_its_window_and_a_real_negative_not_before_its_horizon():
    assert [c[:2] for c in copies_and_labels(STRATEGIES["es_dfm"], now=4)] == []
    assert sorted(c[1] for c in copies_and_labels(STRATEGIES["defer"], now=HORIZON - 1)) == ["positive", "positive",
                                                                                            "window"]  # fmt: skip


def weights_of(strategy: LabelStrategy, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The weights ``(3,)`` of the timeline's copy of ``kind`` covering every item, and its labels."""
    replay, examples = timeline(strategy)
    (i,) = [i for i in examples.trainable(30, replay.trainable) if strategy.kinds[examples.kind[i]] == kind]
    positive = replay.arrived_by(np.array([0]), np.array([min(examples.as_of[i], 30)])).any(-1)
    return examples.weights(np.array([i]), P, positive)[0], positive[0]


def test_unweighted_strategies_weigh_every_copy_one():
    for name in ("oracle", "vanilla", "immediate", "wait", "fnc"):
        replay, examples = timeline(STRATEGIES[name])
        chosen = examples.trainable(30, replay.trainable)
        np.testing.assert_array_equal(examples.weights(chosen, np.tile(P, (len(chosen), 1)), P > 0.4), 1.0)


def test_fnw_weighs_positives_one_plus_p_and_negatives_one_minus_p_times_one_plus_p():
    """Ktena et al. (2019), eq. for FNW: w⁺ = 1 + p, w⁻ = (1 − p)(1 + p)."""
    weight, positive = weights_of(STRATEGIES["fnw"], "negative")
    assert not positive.any()
    np.testing.assert_allclose(weight, (1 - P[0]) * (1 + P[0]))
    replay, examples = timeline(STRATEGIES["fnw"])
    chosen = examples.trainable(30, replay.trainable)
    np.testing.assert_allclose(examples.weights(chosen, np.tile(P, (len(chosen), 1)), np.ones((len(chosen), 3), bool)),
                               np.tile(1 + P, (len(chosen), 1)))  # fmt: skip


def test_fnc_calibrates_the_biased_probability():
    """Ktena et al. (2019): the fake-negative stream estimates b = p / (1 + p); FNC reports p = b / (1 − b)."""
    p = np.array([0.0, 0.1, 0.5, 0.9])
    np.testing.assert_allclose(FakeNegativeCalibration().calibrate(p / (1 + p)), p)
    assert FakeNegativeCalibration().calibrate(np.array([0.6]))[0] == 1.0  # b > 1/2 would be p > 1: clipped
    np.testing.assert_array_equal(FakeNegativeWeighted().calibrate(p), p)


def test_the_delay_model_is_the_share_of_arrived_positives_later_than_the_window():
    _, examples = timeline(STRATEGIES["es_dfm"])  # positives after 3 and 8 steps
    assert examples.delays.later_than(WINDOW) == 0.5
    assert examples.delays.later_than(2) == 1.0 and examples.delays.later_than(8) == 0.0
    assert ExampleLog(Vanilla(), 4).delays.later_than(WINDOW) == 0.0  # before any positive arrived


def test_es_dfm_weighs_with_the_delayed_positive_probability():
    """Yang et al. (2021): p_dp = p · P(elapsed > c), w⁺ = 1 + p_dp, w⁻ = (1 + p_dp)(1 − p) / (1 − p + p_dp)."""
    p, p_dp = P[0], P[0] * 0.5
    weight, positive = weights_of(STRATEGIES["es_dfm"], "window")
    assert positive.tolist() == [True, False, False]
    expected = np.where(positive, 1 + p_dp, (1 + p_dp) * (1 - p) / (1 - p + p_dp))
    np.testing.assert_allclose(weight, expected)
    late, _ = weights_of(STRATEGIES["es_dfm"], "late_positive")
    np.testing.assert_allclose(late[1], 1 + p_dp[1])


def test_defer_weighs_its_duplicated_stream_and_no_positive_as_a_real_negative():
    """Gu et al. (2021): q(y=1|x) = p − p_dp / 2, w⁺ = p / (p − p_dp / 2), w⁻ = (1 − p) / (1 − p + p_dp / 2)."""
    p, p_dp = P[0], P[0] * 0.5
    weight, positive = weights_of(STRATEGIES["defer"], "window")
    np.testing.assert_allclose(weight, np.where(positive, p / (p - p_dp / 2), (1 - p) / (1 - p + p_dp / 2)))
    weight, positive = weights_of(STRATEGIES["defer"], "real_negative")
    assert positive.tolist() == [True, True, False]
    np.testing.assert_allclose(weight, [0.0, 0.0, (1 - p[2]) / (1 - p[2] + p_dp[2] / 2)])


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (lambda: ElapsedSampling(window=-2), r"label window=-2; expected an integer >= 0"),
        (lambda: RealNegatives(window=10, horizon=10), r"label horizon=10; expected an integer >= 11"),
        (lambda: RealNegatives(window=1.5), r"label window=1.5; expected an integer >= 0"),
    ],
)
def test_a_bad_window_or_horizon_is_refused_naming_it(strategy, message):
    with pytest.raises(ValueError, match=message):
        strategy()


# ---------------------------------------------------------------------------- the oracle's labels


def delayed_run(agent_of, steps: int = 30):
    """A learner built by ``agent_of(task)`` on 4 news sessions with the realistic delays; returns it, the records
    the env delivered (arrived and released) and those still pending, and what ``eventual_feedback`` gave."""
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=4, vectorization_mode="vector_entry_point", num_items=120,
                       num_users=40, num_candidates=10, slate_size=3, delay_scale=3.0)  # fmt: skip
    agent = agent_of(Task.of(env))
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    delivered, eventual = [], []
    for _ in range(steps):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        agent.observe(step)
        eventual.append(step.eventual.copy())
        delivered += [step.feedback, step.released]
        obs = step.next_obs
    return agent, np.concatenate(delivered), env.unwrapped.sim.channel.pending_records(), np.concatenate(eventual)


def outcome(records: np.ndarray) -> list[tuple]:
    return sorted(zip(*(records[f].tolist() for f in ("impression_id", "position", "kind", "value")), strict=True))


def test_the_eventual_feedback_is_every_record_the_channel_delivers_or_still_holds():
    _, delivered, pending, eventual = delayed_run(lambda task: LinUCBAgent(task, label=Vanilla()))
    assert len(pending) and (delivered["step_arrived"] > delivered["step_shown"]).any()  # delays are at work
    assert outcome(eventual) == outcome(np.concatenate([delivered, pending]))


def credit_by_shown_item(records: np.ndarray, weights: np.ndarray) -> dict[tuple[int, int], float]:
    from agents.credit import record_credit

    totals: dict[tuple[int, int], float] = {}
    for impression, position, credit in zip(records["impression_id"].tolist(), records["position"].tolist(),
                                            record_credit(records, weights).tolist(), strict=True):  # fmt: skip
        totals[impression, position] = totals.get((impression, position), 0.0) + credit
    return totals


@pytest.mark.parametrize(("strategy", "all_in"), [(Oracle(), True), (Immediate(), False)])
def test_linucb_under_the_oracle_holds_the_eventual_credit_of_every_shown_item(strategy, all_in):
    agent, delivered, pending, _ = delayed_run(lambda task: LinUCBAgent(task, label=strategy))
    log = agent.impressions
    held = np.flatnonzero(log.ids >= 0)
    eventual = credit_by_shown_item(np.concatenate([delivered, pending]), agent.weights)
    expected = np.array([[eventual.get((log.ids[r], p), 0.0) for p in range(3)] for r in held])
    assert np.allclose(log.credit[held], expected) == all_in  # without the privilege, the pending credit is missing


def test_the_bert_agent_under_the_oracle_trains_on_the_eventual_labels(tmp_path):
    from agents.bert import BertAgent

    def bert(task):
        return BertAgent(task, label=Oracle(), encoder="tiny", cache_dir=str(tmp_path), batch_size=8, dim=8,
                         hidden=16, memory_size=4, holdout_fraction=0.0, device="cpu")  # fmt: skip

    agent, delivered, pending, _ = delayed_run(bert)
    serials = agent.replay.serial[agent.replay.serial >= 0]
    values, known = agent.eventual.labels(serials)
    ids = agent.replay.impression[agent.replay.row_of(serials)]
    row, pos, kind = np.nonzero(known)
    held = np.zeros(len(row), FEEDBACK_DTYPE)
    held["impression_id"], held["position"], held["kind"], held["value"] = ids[row], pos, kind, values[row, pos, kind]
    everything = np.concatenate([delivered, pending])
    assert outcome(held) == outcome(everything[np.isin(everything["impression_id"], ids)])
    arrived = agent.replay.arrived[agent.replay.row_of(serials)]
    assert (known & ~arrived).any() and not (arrived & ~known).any()  # the oracle knows what is still on its way
    batches = []
    training_batch = agent._training_batch
    agent._training_batch = lambda rows, arrived, *rest: (
        batches.append((rows, arrived)) or training_batch(rows, arrived, *rest)
    )
    assert agent.update()
    for rows, labels in batches[:1]:  # the first batch is the implicit heads'
        np.testing.assert_array_equal(labels, agent.eventual.labels(agent.replay.serial[rows])[1])


# ---------------------------------------------------------------------------- every strategy with every learner

SMALL = {"es_dfm": {"window": 2}, "defer": {"window": 2, "horizon": 4}, "wait": {"window": 2}}


def small(name: str) -> LabelStrategy:
    return LABEL_STRATEGIES[name](**SMALL.get(name, {}))


@pytest.mark.parametrize("name", sorted(LABEL_STRATEGIES))
def test_linucb_learns_under_every_strategy(name):
    agent, *_ = delayed_run(lambda task: LinUCBAgent(task, label=small(name)), steps=12)
    agent.update()
    size = len(agent.model.target)
    assert (agent.model.gram != np.eye(size)).any() and np.isfinite(agent.theta).all() and agent.theta.any()


@pytest.mark.parametrize("name", sorted(LABEL_STRATEGIES))
def test_the_bert_agent_learns_under_every_strategy(name, tmp_path):
    from agents.bert import BertAgent

    def bert(task):
        return BertAgent(task, label=small(name), encoder="tiny", cache_dir=str(tmp_path), batch_size=8, dim=8,
                         hidden=16, memory_size=4, holdout_fraction=0.0, device="cpu", replay_ratio=1.0)  # fmt: skip

    losses = []

    def learning(task):
        agent = bert(task)
        observe = agent.observe

        def observe_and_learn(transition):
            observe(transition)
            losses.append(agent.update())

        agent.observe = observe_and_learn
        return agent

    delayed_run(learning, steps=12)
    losses = [loss for loss in losses if loss]
    assert losses and all(np.isfinite(loss["loss"]) and loss["click_loss"] > 0 for loss in losses)


# ---------------------------------------------------------------------------- purchases as the positive

PURCHASE_WINDOW = 5
PURCHASES = {3: [(0, Signal.PURCHASE, 1.0)], 8: [(1, Signal.PURCHASE, 1.0)], 9: [(2, Signal.PURCHASE, 0.0)]}
"""A slate of three items shown at step 0, each clicked at once: item 0 bought at step 3 (in the window), item 1 at
step 8 (a late purchase, after it), item 2 never (a real negative; its purchase record of value 0 is no positive)."""


def record(impression: int, position: int, item: int, kind: int, value: float, user: int) -> np.ndarray:
    out = click_record(impression, position, item)
    out["kind"], out["value"], out["user_id"] = kind, value, user
    return out


def purchase_timeline(label: LabelStrategy, steps: int = 12, theta: float = 0.02, bandit=LinUCBAgent):
    """LinUCB on one e-commerce session, the same slate each step, its model frozen at ``θ = theta`` everywhere
    (no solve), so the weights' ``p`` is known; the slate of step 0 gets its clicks at once and :data:`PURCHASES`.
    Returns the agent, ``x`` ``(3, D)`` of the step-0 slate's items and their ``p`` ``(3,)``."""
    env = gym.make_vec("FeedbackRec/Ecommerce-v0", num_envs=1, vectorization_mode="vector_entry_point", num_items=200,
                       num_users=20, delays="none")  # fmt: skip
    agent = bandit(Task.of(env), seed=0, label=label)
    agent.model.theta = np.full(len(agent.theta), theta)
    obs, _ = env.reset(seed=1)
    agent.attach(env)
    first = None
    for step in range(steps):
        action = np.tile(np.arange(agent.task.slate_size), (1, 1))
        next_obs, reward, terminated, truncated, info = env.step(action)
        if first is None:
            first = int(info["impression_id"][0]), obs["candidates"][0, :3].copy(), int(obs["user_id"][0, 0])
        impression, items, user = first
        due = [(slot, Signal.CLICK, 1.0) for slot in range(3)] if step == 0 else PURCHASES.get(step, [])
        arrived = [record(impression, slot, items[slot], kind, value, user) for slot, kind, value in due]
        arrived = np.concatenate(arrived) if arrived else np.zeros(0, FEEDBACK_DTYPE)
        agent.observe(Transition(obs, action, reward, terminated, truncated, info, next_obs, arrived))
        obs = next_obs
    row = agent.impressions.rows_of(np.array([first[0]]))[0]
    x = agent._x(np.full(3, row), np.arange(3))
    return agent, x, np.clip(x @ agent.theta, 0.0, 1.0)


def test_the_positive_signal_selects_which_records_are_positives():
    records = np.concatenate([record(1, 0, 2, kind, value, 0) for kind, value in
                              ((Signal.CLICK, 1.0), (Signal.PURCHASE, 1.0), (Signal.PURCHASE, 0.0))])  # fmt: skip
    assert Vanilla().positive_records(records).tolist() == [True, True, True]
    assert Vanilla(positive="purchase").positive_records(records).tolist() == [False, True, False]
    with pytest.raises(ValueError, match=r"label positive='cart'; expected one of \('consumption', 'purchase'\)"):
        Wait(window=2, positive="cart")


def test_under_purchase_the_delays_are_those_of_the_purchases_and_only_the_late_one_is_reingested():
    agent, _, _ = purchase_timeline(ElapsedSampling(window=PURCHASE_WINDOW, positive="purchase"))
    assert np.flatnonzero(agent.examples.delays.counts).tolist() == [3, 8]
    ex = agent.examples
    held = np.flatnonzero(ex.ref == 0)  # the copies of the step-0 slate
    assert sorted(zip(ex.slot[held].tolist(), ex.kind[held].tolist(), ex.start[held].tolist(), strict=True)) == [
        (-1, 0, PURCHASE_WINDOW), (1, 1, 8)]  # fmt: skip
    consumption, _, _ = purchase_timeline(ElapsedSampling(window=PURCHASE_WINDOW))
    assert np.flatnonzero(consumption.examples.delays.counts).tolist() == [0]  # the clicks, at once


@pytest.mark.parametrize(
    ("strategy", "labels"),
    [
        (Vanilla(positive="purchase"), lambda p: [0, 0, 0]),  # nothing bought at step 0, never corrected
        (Immediate(positive="purchase"), lambda p: [1, 1, 0]),  # corrected in place by both purchases
        (FakeNegativeWeighted(positive="purchase"), lambda p: [1 + p[0], 1 + p[1], 0]),  # w⁺ = 1 + p
        # the window copy at step 5 (s = P(elapsed > 5) = 0: only the purchase after 3 steps is in), the late
        # purchase's copy at step 8 (s = 1/2): w⁺ = 1 + p·s
        (ElapsedSampling(window=PURCHASE_WINDOW, positive="purchase"), lambda p: [1, 1 + p[1] / 2, 0]),
        # the window copy (w⁺ = 1 / (1 − s/2) = 1 at s = 0), both purchases duplicated (s = 0 at step 3, 1/2 at
        # step 8: w⁺ = 4/3), the real-negative copy at step 7 weighing no positive
        (RealNegatives(window=PURCHASE_WINDOW, horizon=7, positive="purchase"), lambda p: [2, 4 / 3, 0]),
    ],
)
def test_linucb_under_purchase_regresses_the_purchases_with_the_strategys_weights(strategy, labels):
    """``b = Σ w y x``: only the copies labelled bought add to it, each ``w`` as the strategy's formula gives."""
    agent, x, p = purchase_timeline(strategy)
    assert 0 < p.min() and p.max() < 1
    np.testing.assert_allclose(agent.model.target, np.asarray(labels(p), float) @ x)


@pytest.mark.parametrize("bandit", [LinUCBAgent, ThompsonAgent])
def test_the_bandits_under_purchase_predict_and_rank_by_the_purchase_probability(bandit):
    agent, _, _ = purchase_timeline(Immediate(positive="purchase"), steps=9, bandit=bandit)
    agent.update()
    env = gym.make_vec("FeedbackRec/Ecommerce-v0", num_envs=1, vectorization_mode="vector_entry_point", num_items=200,
                       num_users=20)  # fmt: skip
    obs, _ = env.reset(seed=2)
    predictions = agent.predict(obs, agent.act(obs, explore=False))
    predicted, k = predictions["purchase"], agent.task.slate_size
    assert set(predictions) == {"purchase", "rating"} and predicted.shape == (1, k)
    x = interactions(agent.context.describe(obs), obs["candidate_features"])
    best = np.sort(x[0] @ agent.theta)[::-1][:k]  # greedy: the k most likely purchases
    np.testing.assert_allclose(np.sort(predicted[0])[::-1], np.clip(best, 1e-6, 1 - 1e-6))
    consumption, _, _ = purchase_timeline(Immediate(), steps=2)
    assert set(consumption.predict(obs, agent.act(obs, explore=False))) == {"click", "rating"}


def test_a_purchase_positive_is_refused_where_nothing_is_bought_or_by_a_learner_that_cannot_learn_it():
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=1, vectorization_mode="vector_entry_point", num_items=50,
                       num_users=5)  # fmt: skip
    with pytest.raises(ValueError, match=r"label.positive='purchase', but the news domain has no purchase signal"):
        LinUCBAgent(Task.of(env), label=Vanilla(positive="purchase"))
    with pytest.raises(
        ValueError, match=r"label.positive='purchase', but this learner learns positives of \('consumption',\)"
    ):
        ExampleLog(Vanilla(positive="purchase"), 4)
