"""Item churn: the world clock, items published into a ring of slots and expiring, candidates from the live pool,
what agents are told (``candidate_age``, ``info["published"]``, :func:`agents.loop.tell_published`) and the
evaluation's cold-start metrics. The checkers, the determinism rollout and feedback conservation run on every
registered id (the churned ``-v1`` ones included) in tests/test_envs.py and tests/test_feedback.py."""

from __future__ import annotations

import tracemalloc

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.base import Task
from agents.bert import BertAgent
from agents.evaluation import evaluate
from agents.linucb import LinUCBAgent
from agents.loop import run_online, tell_published
from agents.popularity import PopularityAgent
from agents.random import RandomAgent
from envs import Signal
from envs.draws import draw_key
from envs.dynamics import LIVE_CANDIDATE_DRAWS, World, draw_live_candidates
from envs.pool import ITEM_BLOCK, Published
from models.encoder import text_embeddings
from tests.test_feedback import run_world

FAST = {"num_items": 300, "num_users": 200, "publish_rate": 2.0, "item_lifetime": 60}
"""A world whose items turn over every 60 ticks: 120 live, 2 new per tick."""


def churned_vec(num_envs: int = 8, **kwargs):
    return gym.make_vec(
        "FeedbackRec/News-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **{**FAST, **kwargs}
    )


def random_slates(rng, batch: int, m: int = 20, k: int = 5) -> np.ndarray:
    return np.argsort(rng.random((batch, m)), axis=1)[:, :k]


@pytest.mark.parametrize("mix", [(0.25, 0.25), (0.0, 0.0), (0.5, 0.5), (1.0, 0.0)])
def test_candidates_are_distinct_live_items_no_older_than_the_lifetime(mix):
    """Every candidate list holds distinct live items, aged at most ``item_lifetime`` by ``candidate_age`` and by
    the catalogue's publication ticks; once the run is longer than the lifetime no candidate predates tick 0."""
    env = churned_vec(candidate_fresh=mix[0], candidate_popular=mix[1])
    obs, _ = env.reset(seed=3)
    sim, rng = env.unwrapped.sim, np.random.default_rng(0)
    for _ in range(150):
        candidates, age = obs["candidates"], obs["candidate_age"]
        assert ((0 <= age) & (age <= FAST["item_lifetime"])).all()
        assert np.array_equal(age, sim.clock - env.unwrapped.catalog.published[candidates])
        assert all(len(set(row)) == len(row) for row in candidates.tolist())
        if sim.clock > FAST["item_lifetime"]:
            assert (env.unwrapped.catalog.published[candidates] >= 0).all()
        obs, *_ = env.step(random_slates(rng, 8))
    assert sim.clock == 150


def test_fresh_candidates_are_the_newest_items():
    """With every candidate drawn as fresh, each list is among the ``2 M`` newest live items."""
    env = churned_vec(candidate_fresh=1.0, candidate_popular=0.0)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(30):
        obs, *_ = env.step(random_slates(rng, 8))
        newest_age = (2 * 20) / FAST["publish_rate"]  # 40 newest items at 2 a tick
        assert (obs["candidate_age"] <= newest_age).all()


def test_published_names_every_slot_whose_item_changed_with_its_id_and_text():
    """An item index never names two items without the agent being told: each step's ``info["published"]`` lists
    exactly the slots whose item id changed, with the new ids (never seen before) and texts; a new item is not a
    candidate before the observation that follows its publication."""
    env = churned_vec()
    env.reset(seed=0)
    catalog, rng = env.unwrapped.catalog, np.random.default_rng(0)
    ids, seen = list(catalog.item_ids), set(catalog.item_ids)
    for _ in range(100):
        _, _, _, _, info = env.step(random_slates(rng, 8))
        now = list(catalog.item_ids)
        changed = [s for s in range(len(now)) if now[s] != ids[s]]
        published = env.unwrapped.published
        assert sorted(published.items.tolist()) == changed
        assert not (set(published.item_ids) & seen), "an id was reused"
        assert published.texts == [catalog.texts[int(s)] for s in published.items]
        assert (catalog.published[published.items] == env.unwrapped.sim.clock).all()
        if changed:
            assert info["_published"].all() and info["published"][0] is published
        seen |= set(published.item_ids)
        ids = now


def test_single_env_info_carries_the_published_items():
    env = gym.make("FeedbackRec/News-v0", **FAST)
    env.reset(seed=0)
    infos = [env.step(env.action_space.sample())[4] for _ in range(5)]
    assert all(isinstance(i["published"], Published) and len(i["published"].items) == 2 for i in infos)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    click_delay=st.integers(0, 12),
    rating_delay=st.integers(0, 40),
    steps=st.integers(1, 250),
    reset_every=st.integers(0, 15),
    seed=st.integers(0, 2**16),
)
def test_every_record_is_delivered_exactly_once_while_items_turn_over(
    click_delay, rating_delay, steps, reset_every, seed
):
    delays = {"click": click_delay, "rating": rating_delay}
    env, delivered = run_world("FeedbackRec/News-v0", delays, steps, reset_every, None, seed, max_delay=40, **FAST)
    channel = env.unwrapped.sim.channel
    pending = channel.pending_records()
    counts = np.bincount(delivered["kind"], minlength=len(Signal)) + np.bincount(pending["kind"], minlength=len(Signal))
    assert np.array_equal(counts, channel.generated)
    keys = np.concatenate([delivered, pending])[["impression_id", "position", "kind"]]
    assert len(np.unique(keys)) == len(keys), "a record was delivered twice"


def test_memory_stays_flat_as_items_turn_over():
    """Many times the slots' worth of items published: the pool's arrays keep their size, few item blocks are
    kept, and the memory allocated while stepping does not grow with the run's length."""
    env = churned_vec(num_envs=4, num_items=4000, publish_rate=40.0, item_lifetime=60)
    env.reset(seed=0)
    pool, rng = env.unwrapped.sim.pool, np.random.default_rng(0)
    sizes = {name: getattr(pool, name).nbytes for name in ("serial", "items", "attrs", "meta", "score")}

    def run(ticks):
        for _ in range(ticks):
            env.step(random_slates(rng, 4))
            env.unwrapped.published = None  # only the simulator's own state may stay alive

    run(100)
    tracemalloc.start()
    run(100)
    first, _ = tracemalloc.get_traced_memory()
    run(400)  # 16,000 more items: four rings' worth
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pool.serial.max() > 5 * 4000
    assert {name: getattr(pool, name).nbytes for name in sizes} == sizes
    assert len(pool._blocks) <= 4 and ITEM_BLOCK * 4 < 16_000
    assert second - first < 2_000_000, f"memory grew by {second - first} bytes over 400 ticks"


def test_a_world_started_late_holds_the_items_a_world_run_from_zero_holds_then():
    env, late = churned_vec(num_envs=2), churned_vec(num_envs=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(75):
        env.step(random_slates(rng, 2))
    obs, _ = late.reset(seed=5, options={"start_tick": 75})
    a, b = env.unwrapped.catalog, late.unwrapped.catalog
    assert late.unwrapped.sim.clock == 75
    assert list(a.item_ids) == list(b.item_ids) and list(a.texts) == list(b.texts)
    assert np.array_equal(a.published, b.published)
    assert (obs["candidate_age"] <= FAST["item_lifetime"]).all()
    assert len(late.unwrapped.published.items) == 150  # the slots the late start rewrote


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"item_lifetime": 10}, r"item_lifetime=10 with publish_rate=0; expected publish_rate > 0"),
        ({"freshness_half_life": 5.0}, r"freshness_half_life=5.0 with publish_rate=0"),
        ({"publish_rate": -1.0}, r"publish_rate=-1.0"),
        ({"publish_rate": 10.0, "item_lifetime": 100}, r"num_items=300 slots cannot hold .* item_lifetime=100"),
        ({"publish_rate": 0.1, "item_lifetime": 50}, r"keeps as few as 4 items live; num_candidates=20"),
        ({"candidate_fresh": 0.7, "candidate_popular": 0.5}, r"candidate_fresh=0.7 \+ candidate_popular=0.5 exceeds 1"),
    ],
)
def test_bad_churn_settings_are_refused_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("FeedbackRec/News-v0", num_items=300, num_users=50, **kwargs)


def test_churn_refuses_fixed_items_and_bad_reset_options():
    catalog = gym.make("FeedbackRec/News-v0", num_items=300).unwrapped.catalog
    with pytest.raises(ValueError, match="with a catalog of your own; expected catalog=None"):
        gym.make("FeedbackRec/News-v0", catalog=catalog, **FAST)
    with pytest.raises(ValueError, match=r"fixed item_features array of shape \(300, 4\)"):
        gym.make("FeedbackRec/News-v0", item_features=np.zeros((300, 4), np.float32), **FAST)
    env = churned_vec(num_envs=2)
    with pytest.raises(ValueError, match=r"reset options \['tick'\]; expected some of \['start_tick'\]"):
        env.reset(seed=0, options={"tick": 3})
    with pytest.raises(ValueError, match="start_tick=-1; expected an integer >= 0"):
        env.reset(seed=0, options={"start_tick": -1})
    with pytest.raises(ValueError, match="without a seed"):
        env.reset(options={"start_tick": 3})


def test_the_live_candidate_draw_reads_its_declared_uniforms():
    """The live draw reads exactly LIVE_CANDIDATE_DRAWS uniforms, the span the draw layout gives it."""
    env = churned_vec(num_envs=1)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    world, params = World(*sim._world), sim._params[0]
    out, ages = np.empty((1, 20), np.int64), np.empty((1, 20), np.int64)
    keys = [draw_key(np.random.default_rng(s)) for s in range(50)]
    assert {draw_live_candidates(out, ages, 0, world, params, key, 5, sim.clock) - 5 for key in keys} == {
        LIVE_CANDIDATE_DRAWS
    }
    assert sim.draws.stride - sim.draws.candidates == LIVE_CANDIDATE_DRAWS


def test_agents_are_told_only_of_items_new_to_them():
    """tell_published hands over each new item once; a world reset later tells only of the items published since
    the agent last looked, not of every slot the reset rewrote; popularity forgets the slots' earlier items."""
    env = churned_vec(num_envs=4)
    agent = PopularityAgent(Task.of(env))
    told = []
    original = agent.items_published
    agent.items_published = lambda published: (told.append(published), original(published))
    run_online(agent, env, 4 * 50, progress=False)
    assert [len(p.items) for p in told] == [2] * 50  # two a tick (the first reset only shows the agent the world)
    assert (agent.shows[told[-1].items] == 0).all() and (agent.earned[told[-1].items] == 0).all()
    told.clear()
    later = churned_vec(num_envs=4)
    later.reset(seed=9, options={"start_tick": 50 + 10})
    tell_published(agent, later)
    assert sum(len(p.items) for p in told) == 2 * 10


def test_cold_start_metrics_count_the_shown_items_by_age():
    """``fresh_share`` is the share of shown items younger than ``fresh_ticks`` and ``cold_start_ctr`` their
    consumption rate: every item is fresh when ``fresh_ticks`` exceeds the lifetime (then the cold-start CTR is the
    consumption rate per shown item), none when items are older; a static world reports neither."""
    task = Task.of(churned_vec())
    everything = evaluate(RandomAgent(task, seed=0), churned_vec(), seed=4, fresh_ticks=FAST["item_lifetime"] + 1)
    assert everything["fresh_share"] == 1.0
    assert everything["cold_start_ctr"] == pytest.approx(everything["ctr"] / 5)
    some = evaluate(RandomAgent(task, seed=0), churned_vec(), seed=4, fresh_ticks=10)
    assert 0 < some["fresh_share"] < 0.5
    static = gym.make_vec("FeedbackRec/News-v0", num_envs=8, vectorization_mode="vector_entry_point", num_items=300)
    plain = evaluate(RandomAgent(Task.of(static), seed=0), static, seed=4)
    assert plain["cold_start_ctr"] is None and plain["fresh_share"] is None


def test_each_learner_forgets_a_published_slots_earlier_item(tmp_path):
    """Popularity and ε-greedy zero the slot's counts, the linear bandits its remembered features, and the BERT agent
    encodes the new text (through the embedding cache) into its item table and zeroes the slot's bias and
    statistics; the other slots keep what was learnt."""
    env = churned_vec(num_envs=4)
    env.reset(seed=0)
    task, slots = Task.of(env), np.array([3, 9])
    new = Published(slots, ["ne-new-1", "ne-new-2"], ["Fresh story about glaciers", "Another story on elections"])
    popularity = PopularityAgent(task)
    popularity.shows[:], popularity.earned[:] = 5, 2.0
    popularity.items_published(new)
    assert (popularity.shows[slots] == 0).all() and (popularity.earned[slots] == 0).all()
    assert popularity.shows[0] == 5 and popularity.earned[0] == 2.0
    linucb = LinUCBAgent(task)
    linucb.context.features[:] = 1.0
    linucb.items_published(new)
    assert (linucb.context.features[slots] == 0).all() and (linucb.context.features[0] == 1).all()
    bert = BertAgent(task, cache_dir=str(tmp_path), encoder="tiny", dim=8, hidden=16, device="cpu")
    bert.attach(env)
    with torch.no_grad():
        bert.net.item_bias.weight[:] = 1.0
    bert.item_stats.shown[:] = 4.0
    before = bert.net.match_table.clone()
    bert.items_published(new)
    expected = bert.net.match_vectors(torch.as_tensor(text_embeddings(new.texts, bert.encoder, str(tmp_path))))
    assert torch.allclose(bert.net.match_table[slots], expected)
    assert torch.equal(bert.net.match_table[0], before[0])
    assert (bert.net.item_bias.weight[slots] == 0).all() and (bert.net.item_bias.weight[0] == 1).all()
    assert (bert.item_stats.shown[slots] == 0).all() and bert.item_stats.shown[0] == 4.0
    assert [bert.text.texts[s] for s in slots] == new.texts
