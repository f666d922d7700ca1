"""The feedback channel: delays, privacy, conservation, value ranges (property-based)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import FEEDBACK_DTYPE, Signal, as_events, as_records
from envs.feedback import DelayTable, FeedbackChannel
from envs.signals import SIGNALS
from tests.conftest import ENV_IDS, SMALL

ONE_SESSION = np.zeros(1, np.int64)


def clicks(n: int, step: int, kind: Signal = Signal.CLICK) -> np.ndarray:
    records = np.zeros(n, FEEDBACK_DTYPE)
    records["kind"] = kind
    records["value"] = 1.0
    records["step_shown"] = step
    records["impression_id"] = step * 1000 + np.arange(n)
    records["text_id"] = -1
    return records


def stream_delays(table: DelayTable, steps: int = 400, per_step: int = 50) -> np.ndarray:
    """Delays of records fed to one never-ending session for ``steps`` steps."""
    channel = FeedbackChannel(table)
    rng = np.random.default_rng(0)
    delays = []
    for step in range(steps + table.max_steps + 1):
        fresh = clicks(per_step, step) if step < steps else clicks(0, step)
        arrived = channel.advance(fresh, step, rng, ONE_SESSION, np.zeros(1, np.int64))
        delays.extend((arrived["step_arrived"] - arrived["step_shown"]).tolist())
    assert channel.pending == 0 and len(delays) == steps * per_step
    return np.array(delays)


@pytest.mark.parametrize("mean", [0.5, 3.0, 10.0])
def test_geometric_delays_have_the_configured_mean(mean):
    delays = stream_delays(DelayTable.parse({"click": f"geometric:{mean}"}, max_steps=500))
    assert abs(delays.mean() - mean) < 0.1 * mean + 0.05
    assert delays.min() == 0


def test_geometric_delays_are_truncated_at_max_delay():
    delays = stream_delays(DelayTable.parse({"click": "geometric:8"}, max_steps=10))
    assert delays.max() == 10


def test_fixed_delays_and_scale():
    assert set(stream_delays(DelayTable.parse({"click": "fixed:3"}, scale=2.0))) == {6}
    assert set(stream_delays(DelayTable.parse({"click": 4}, scale=0.0))) == {0}


@pytest.mark.parametrize(("mean", "scale"), [(1, 0.5), (5, 0.5), (3, 0.3), (2, 1.25)])
def test_fractional_fixed_delays_are_rounded_at_random_to_keep_the_mean(mean, scale):
    """A scaled fixed delay that is not a whole number of steps is ⌊m⌋ or ⌊m⌋ + 1 steps, the latter with
    probability m − ⌊m⌋: its mean is the scaled mean (``delay=short`` keeps a 1-step delay's half step)."""
    delays = stream_delays(DelayTable.parse({"click": f"fixed:{mean}"}, scale=scale))
    scaled = mean * scale
    assert set(delays.tolist()) == {np.floor(scaled), np.floor(scaled) + 1}
    share = scaled - np.floor(scaled)
    assert abs(delays.mean() - scaled) < 4 * np.sqrt(share * (1 - share) / len(delays))


def test_whole_number_fixed_delays_stay_fixed():
    assert set(stream_delays(DelayTable.parse({"click": 2}, scale=1.5))) == {3}
    assert set(stream_delays(DelayTable.parse({"click": "fixed:1"}))) == {1}


def test_delay_above_max_is_refused():
    with pytest.raises(ValueError, match=r"delay of 'rating' has mean 300 steps, above max_delay=200"):
        DelayTable.parse({"rating": 300})


def test_records_due_in_skipped_steps_arrive_at_the_next_advance():
    """The wheel is read for every step since the last ``advance``, so a caller that skips steps loses nothing."""
    channel = FeedbackChannel(DelayTable.parse({"click": "fixed:3", "rating": "fixed:7"}, max_steps=10))
    rng, users = np.random.default_rng(0), np.zeros(1, np.int64)
    fresh = np.concatenate([clicks(5, 0), clicks(2, 0, Signal.RATING)])
    assert len(channel.advance(fresh, 0, rng, ONE_SESSION, users)) == 0
    arrived = channel.advance(clicks(0, 5), 5, rng, ONE_SESSION, users)
    assert (arrived["kind"] == Signal.CLICK).all() and len(arrived) == 5 and (arrived["step_arrived"] == 5).all()
    arrived = channel.advance(clicks(0, 40), 40, rng, ONE_SESSION, users)  # more steps than the wheel has slots
    assert (arrived["kind"] == Signal.RATING).all() and len(arrived) == 2 and channel.pending == 0


def test_many_pending_records_grow_the_wheel_and_arrive_in_scheduling_order():
    channel = FeedbackChannel(DelayTable.parse({"click": "fixed:2"}))
    rng, users = np.random.default_rng(0), np.zeros(1, np.int64)
    first, second = clicks(3000, 0), clicks(3000, 1)
    channel.advance(first, 0, rng, ONE_SESSION, users)
    channel.advance(second, 1, rng, ONE_SESSION, users)
    assert channel.pending == 6000
    assert np.array_equal(
        channel.advance(clicks(0, 2), 2, rng, ONE_SESSION, users)["impression_id"], first["impression_id"]
    )
    assert np.array_equal(
        channel.advance(clicks(0, 3), 3, rng, ONE_SESSION, users)["impression_id"], second["impression_id"]
    )


def run_world(env_id: str, delays: dict, steps: int, reset_every: int, privacy, seed: int, **world):
    """Step a world (``SMALL`` and ``max_delay=30`` unless ``world`` says otherwise) with random slates and forced
    early resets; return the env and every record delivered (at steps and at resets)."""
    world = {**SMALL, "max_delay": 30, **world}
    env = gym.make(env_id, delays=delays, privacy_epsilon=privacy, **world)
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    delivered = [as_records(info["feedback"])]
    for t in range(steps):
        _, _, terminated, truncated, info = env.step(rng.permutation(20)[:5])
        delivered.append(as_records(info["feedback"]))
        if terminated or truncated or (reset_every and t % reset_every == reset_every - 1):
            _, info = env.reset()
            delivered.append(as_records(info["feedback"]))
    return env, np.concatenate(delivered)


delay_spec = st.one_of(
    st.just("none"),
    st.integers(0, 12),
    st.floats(0.0, 10.0).map(lambda m: f"geometric:{m:.2f}"),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    env_id=st.sampled_from(ENV_IDS),
    click_delay=delay_spec,
    rating_delay=delay_spec,
    steps=st.integers(1, 300),
    reset_every=st.integers(0, 15),
    privacy=st.one_of(st.none(), st.floats(0.1, 5.0)),
    seed=st.integers(0, 2**16),
)
def test_every_generated_record_is_delivered_exactly_once(
    env_id, click_delay, rating_delay, steps, reset_every, privacy, seed
):
    delays = {"click": click_delay, "rating": rating_delay}
    if "/Music-" in env_id:
        delays = {"play": click_delay, "rating": rating_delay}
    env, delivered = run_world(env_id, delays, steps, reset_every, privacy, seed)
    channel = env.unwrapped.sim.channel
    pending = channel.pending_records()
    counts = np.bincount(delivered["kind"], minlength=len(Signal)) + np.bincount(pending["kind"], minlength=len(Signal))
    assert np.array_equal(counts, channel.generated)
    assert np.array_equal(channel.delivered, np.bincount(delivered["kind"], minlength=len(Signal)))
    keys = np.concatenate([delivered, pending])[
        ["impression_id", "position", "kind"]
    ]  # one record a shown item and kind
    assert len(np.unique(keys)) == len(keys), "a record was delivered twice"
    assert (delivered["step_arrived"] >= delivered["step_shown"]).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env_id=st.sampled_from(ENV_IDS), privacy=st.one_of(st.none(), st.floats(0.05, 3.0)), seed=st.integers(0, 2**16))
def test_values_stay_in_their_ranges(env_id, privacy, seed):
    """Without privacy every value lies in its signal's declared range; a private report keeps binary values
    binary and ratings on the scale (0: not rated), numeric ones carry unbounded Laplace noise."""
    env, records = run_world(env_id, {}, 300, 0, privacy, seed)
    stars = env.unwrapped.sim.rating_scale.stars().tolist()  # 1..5, or MovieLens-v1's half stars
    for kind in np.unique(records["kind"]):
        info = SIGNALS.info(int(kind))
        values = records["value"][records["kind"] == kind]
        assert np.isfinite(values).all()
        if privacy is None or SIGNALS.binary[kind]:
            assert values.min() >= (0.0 if kind == Signal.RATING else info.low) and values.max() <= info.high, kind
        if SIGNALS.binary[kind]:
            assert set(np.unique(values)) <= {0.0, 1.0}
    ratings = records["value"][records["kind"] == Signal.RATING]
    assert np.isin(ratings, stars if privacy is None else [0, *stars]).all()
    if privacy is None:
        assert (records["value"][records["kind"] == Signal.PURCHASE_AMOUNT] >= 0).all()


def test_feedback_columns_round_trip_to_records_and_events():
    env = gym.make("FeedbackRec/News-v0", delays="none", **SMALL)
    env.reset(seed=0)
    info = {}
    while not len(info.get("feedback", {"kind": []})["kind"]):
        _, _, terminated, truncated, info = env.step([0, 1, 2, 3, 4])
        if terminated or truncated:
            env.reset()
    columns = info["feedback"]
    records = as_records(columns)
    assert records.dtype == FEEDBACK_DTYPE and len(records) == len(columns["kind"])
    copied = as_records({k: v.copy() for k, v in columns.items()})
    assert copied.tobytes() == records.tobytes()
    events = as_events(columns)
    assert [e.kind for e in events] == [Signal(k) for k in columns["kind"]]
    with pytest.raises(ValueError, match="lack"):
        as_records({"kind": columns["kind"]})


EVERY_SIGNAL_PAYS = {"reward_weights": {signal.label: 1.0 for signal in Signal}}
"""Rewards that count every record (with the domains' own delays), so none can go unnoticed."""


def owed(sim, feedback) -> np.ndarray:
    """``(B,)`` what a reward owes each sub-env for ``feedback``: ``Σ weight[kind] · (value − neutral[kind])`` over
    the records delivered to it."""
    records = as_records(feedback)
    kinds = records["kind"]
    value = sim.reward_weight[kinds] * (records["value"] - SIGNALS.neutral[kinds])
    return np.bincount(records["env_index"], weights=value, minlength=sim.num_envs)


def test_every_delivered_records_reward_is_paid_with_the_next_step_in_the_single_env(env_id):
    """Each step pays the feedback that arrived in it, plus that delivered at the session's start (held for its
    returning user) — also after a reset that abandons a session, or two resets in a row: nothing lost, nothing
    paid twice, nothing paid late."""
    env = gym.make(env_id, num_items=300, num_users=3, max_delay=40, **EVERY_SIGNAL_PAYS)
    sim, rng = env.unwrapped.sim, np.random.default_rng(0)
    _, info = env.reset(seed=0)
    due = owed(sim, info["feedback"])
    paid_at_starts = 0.0
    for t in range(1500):
        _, reward, terminated, truncated, info = env.step(rng.permutation(20)[:5])
        assert reward == pytest.approx(due[0] + owed(sim, info["feedback"])[0], rel=1e-9, abs=1e-9), t
        paid_at_starts += abs(due[0])
        due = np.zeros(1)
        for _ in range(1 + (t % 50 == 0)):  # now and then a second reset before any step
            if terminated or truncated or t % 10 == 0:
                _, info = env.reset()
                due += owed(sim, info["feedback"])
    assert paid_at_starts > 0, "no feedback valued by the reward was delivered at a session start"


def test_every_delivered_records_reward_is_paid_with_the_next_step_in_the_vector_env_across_a_checkpoint(env_id):
    """The same per sub-env in the batched env with autoreset, through a checkpoint taken while a reward is carried:
    the restored env pays what the original pays, bit for bit."""

    def make():
        return gym.make_vec(
            env_id,
            num_envs=8,
            vectorization_mode="vector_entry_point",
            num_items=300,
            num_users=10,
            max_delay=40,
            **EVERY_SIGNAL_PAYS,
        )

    def run(vec, due, slates):
        """Step ``vec`` through ``slates``, checking each step's reward; returns the rewards and what is due."""
        sim, paid = vec.unwrapped.sim, []
        for t, slate in enumerate(slates):
            _, reward, _, _, _info = vec.step(slate)
            arrived, released = vec.unwrapped.delivered
            np.testing.assert_allclose(reward, due + owed(sim, arrived), rtol=1e-9, atol=1e-9, err_msg=t)
            paid.append(reward)
            due = owed(sim, released)
        return np.array(paid), due

    rng = np.random.default_rng(1)
    slates = np.argsort(rng.random((1200, 8, 20)), axis=2)[:, :, :5]
    vec = make()
    vec.reset(seed=1)
    due, t = owed(vec.unwrapped.sim, vec.unwrapped.delivered.released), 0
    while not due.any():  # run until a session starts with reward to carry
        _, due = run(vec, due, slates[t : t + 1])
        t += 1
    restored = make()
    restored.load_state_dict(vec.unwrapped.state_dict())
    original_paid, _ = run(vec, due, slates[t : t + 600])
    restored_paid, _ = run(restored, due, slates[t : t + 600])
    assert np.array_equal(original_paid, restored_paid)
