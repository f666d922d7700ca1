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
from agents.labels import Copy, Immediate, LabelStrategy, Wait
from agents.linucb import LinUCBAgent
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

    def weights(self, kind, probability):
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
