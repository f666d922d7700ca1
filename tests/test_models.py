"""models/: text encoder, embedding cache, feedback features, replay and the fusion network."""

from __future__ import annotations

import importlib
import logging
import socket

import numpy as np
import pytest
import torch

from agents.examples import ExampleLog
from agents.labels import Wait
from envs.catalog import Catalog
from envs.domains.news import NEWS
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import SIGNALS, Signal
from models import encoder as encoder_module
from models import network as network_module
from models.cache import ENV_VAR, EmbeddingCache, default_cache_dir
from models.encoder import MINILM_INSTALL, TextEncoder, catalog_embeddings, encoder_identity
from models.features import (
    ITEM_STATS,
    ItemStats,
    RewardWeights,
    TextSentiment,
    consumption_depth,
    engagement_features,
    feature_names,
    slate_labels,
)
from models.network import (
    FUSED_HEADS,
    FUSIONS,
    HEADS,
    RecommenderNet,
    UserBatch,
    expected_reward,
    head_losses,
    predicted_stars,
    text_similarity,
)
from models.replay import FeedbackReplay
from models.tiny import tiny_bert

TEXTS = ["Inside the football story that divides the league world", "Why the latest vaccine surprises experts on sleep"]


def forbid_network(monkeypatch) -> None:
    """Make any attempt to open a network connection fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def tiny() -> TextEncoder:
    return TextEncoder.load("tiny", device="cpu")


# ---------------------------------------------------------------- encoder


def test_tiny_bert_is_fixed_by_its_seed():
    a, _ = tiny_bert(seed=1)
    b, _ = tiny_bert(seed=1)
    c, _ = tiny_bert(seed=2)
    wa, wb, wc = (m.embeddings.word_embeddings.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_tiny_bert_leaves_the_global_torch_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    tiny_bert(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_encode_gives_unit_vectors_independent_of_batch_padding(tiny):
    alone = tiny.encode(TEXTS[:1])
    padded = tiny.encode(["a", TEXTS[0], TEXTS[1] * 3], batch_size=3)
    assert alone.shape == (1, tiny.dim) and alone.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(padded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(padded[1], alone[0], atol=1e-5)
    assert not np.allclose(padded[0], padded[1])


def test_encode_keeps_input_order_when_batching_by_length(tiny):
    texts = ["short", TEXTS[0], "mid length text", TEXTS[1]]
    together = tiny.encode(texts, batch_size=2)
    one_by_one = np.concatenate([tiny.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_unknown_encoder_name_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match="encoder='no-such-model'"):
        TextEncoder.load("no-such-model")
    with pytest.raises(ValueError, match="local Hugging Face model directory"):
        encoder_identity(tmp_path)


def test_missing_minilm_package_says_what_to_install(monkeypatch):
    real = importlib.import_module

    def without_minilm(name, *args):
        if name == encoder_module.MINILM_PACKAGE:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(encoder_module.importlib, "import_module", without_minilm)
    with pytest.raises(ModuleNotFoundError) as error:
        TextEncoder.load("minilm")
    assert MINILM_INSTALL in str(error.value)


def test_a_local_model_directory_is_loaded_offline(tmp_path, monkeypatch):
    model, tokenizer = tiny_bert(seed=3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    forbid_network(monkeypatch)
    loaded = TextEncoder.load(tmp_path, device="cpu")
    reference = TextEncoder(model, tokenizer, "reference")
    np.testing.assert_allclose(loaded.encode(TEXTS), reference.encode(TEXTS), atol=1e-5)
    assert loaded.identity == encoder_identity(tmp_path)


# ---------------------------------------------------------------- cache


def test_cache_round_trip_and_model_identities_do_not_mix(tmp_path):
    vectors = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    EmbeddingCache("model-a", tmp_path).store(["x", "y", "z"], vectors)
    found, missing = EmbeddingCache("model-a", tmp_path).lookup(["z", "w", "x"])
    assert missing.tolist() == [False, True, False]
    np.testing.assert_array_equal(found[[0, 2]], vectors[[2, 0]])
    other, missing = EmbeddingCache("model-b", tmp_path).lookup(["x"])
    assert other is None and missing.all()


def test_cache_writes_leave_no_temporary_files(tmp_path):
    cache = EmbeddingCache("m", tmp_path)
    cache.store(["a"], np.ones((1, 2), np.float32))
    cache.store(["b"], np.zeros((1, 2), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == [cache.path.name]
    assert not cache.lookup(["a", "b"])[1].any()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_cache_file_is_detected_and_never_used(tmp_path, caplog, damage):
    cache = EmbeddingCache("m", tmp_path)
    cache.store(["a", "b"], np.arange(8, dtype=np.float32).reshape(2, 4))
    data = bytearray(cache.path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 7]
    else:
        data[-3] ^= 0xFF
    cache.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        found, missing = cache.lookup(["a", "b"])
    assert found is None and missing.all()
    assert "unusable" in caplog.text
    cache.store(["a"], np.ones((1, 4), np.float32))
    found, missing = cache.lookup(["a", "b"])
    assert missing.tolist() == [False, True] and found[0].tolist() == [1.0] * 4


def test_cache_dir_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    assert EmbeddingCache("m").directory == tmp_path / "from-env"
    assert EmbeddingCache("m", tmp_path / "arg").directory == tmp_path / "arg"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "feedbackrec" / "embeddings"


def test_an_unwritable_cache_dir_is_refused_naming_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"cache_dir=.*not a writable directory"):
        EmbeddingCache("m", blocker / "cache")


def test_catalog_embeddings_are_encoded_once_then_read_from_disk(tmp_path, monkeypatch):
    catalog = Catalog.generate(NEWS, 40, seed=0)
    first = catalog_embeddings(catalog, "tiny", tmp_path)
    assert first.shape == (40, 32) and first.dtype == np.float32

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every text was cached")

    monkeypatch.setattr(TextEncoder, "load", no_model)
    np.testing.assert_array_equal(catalog_embeddings(catalog, "tiny", tmp_path), first)


def test_catalog_embeddings_encode_only_the_texts_not_cached(tmp_path, tiny):
    catalog = Catalog.generate(NEWS, 30, seed=0)
    texts = list(catalog.texts)
    EmbeddingCache(tiny.identity, tmp_path).store(texts[:20], np.zeros((20, tiny.dim), np.float32))
    encoded = []
    original = tiny.encode

    def spy(batch, **kwargs):
        encoded.extend(batch)
        return original(batch, **kwargs)

    tiny.encode = spy
    try:
        vectors = catalog_embeddings(catalog, tiny, tmp_path)
    finally:
        del tiny.encode
    assert sorted(encoded) == sorted(texts[20:])
    assert not vectors[:20].any() and np.abs(vectors[20:]).sum() > 0


# ---------------------------------------------------------------- features


def feedback(**signals: float) -> tuple[np.ndarray, np.ndarray]:
    """One engagement's ``values`` and ``arrived`` ``(S,)`` from ``kind=value`` pairs."""
    values, arrived = np.zeros(SIGNALS.count, np.float32), np.zeros(SIGNALS.count, bool)
    for name, value in signals.items():
        values[SIGNALS.parse(name)], arrived[SIGNALS.parse(name)] = value, True
    return values, arrived


def features_of(*engagements, sentiment=None, seconds=None, age=None, global_rating=3.0) -> np.ndarray:
    """Features ``(P, F)`` of one user's engagements (each a ``feedback(...)`` pair)."""
    values = np.stack([v for v, _ in engagements])[None]
    arrived = np.stack([a for _, a in engagements])[None]
    p = len(engagements)
    sentiment = np.full((1, p), np.nan, np.float32) if sentiment is None else np.asarray([sentiment], np.float32)
    seconds = np.full((1, p), 150.0, np.float32) if seconds is None else np.asarray([seconds], np.float32)
    age = np.zeros((1, p)) if age is None else np.asarray([age])
    return engagement_features(values, arrived, np.ones((1, p), bool), sentiment, seconds, age, global_rating)[0]


def column(features: np.ndarray, name: str) -> np.ndarray:
    return features[..., feature_names().index(name)]


def test_a_missing_rating_is_masked_not_a_bad_rating():
    never_rated, rated_low = features_of(feedback(click=1)), features_of(feedback(click=1, rating=1))
    assert column(never_rated, "rating_mask")[0] == 0 and column(rated_low, "rating_mask")[0] == 1
    assert column(never_rated, "rating")[0] == 0 and column(rated_low, "rating")[0] == -1


def test_ratings_are_debiased_by_the_users_own_mean():
    generous = features_of(feedback(rating=5), feedback(rating=5), feedback(rating=5), feedback(rating=4))
    harsh = features_of(feedback(rating=2), feedback(rating=2), feedback(rating=2), feedback(rating=4))
    assert column(generous, "rating")[3] == column(harsh, "rating")[3]
    assert column(generous, "rating_debiased")[3] < 0 < column(harsh, "rating_debiased")[3]


def test_dwell_is_normalised_by_reading_time_and_fractions_pass_through():
    values, arrived = (
        np.stack([feedback(dwell_seconds=60)[0], feedback(watch_fraction=0.4)[0]]),
        np.stack([feedback(dwell_seconds=60)[1], feedback(watch_fraction=0.4)[1]]),
    )
    depth, known = consumption_depth(values, arrived, np.array([240.0, np.nan]))
    np.testing.assert_allclose(depth, [0.25, 0.4])
    assert known.all()
    depth, known = consumption_depth(values[:1], arrived[:1], np.array([np.nan]))
    assert not known[0]


def test_implicit_signals_amount_sentiment_and_recency():
    f = features_of(
        feedback(click=1, purchase=1, purchase_amount=1000.0),
        feedback(play=1, skip=1, like=0),
        sentiment=[5.0, np.nan],
        age=[0, 1000],
    )
    np.testing.assert_allclose(column(f, "log_purchase_amount"), [1.0, 0.0], atol=1e-6)
    assert column(f, "purchase_amount_mask").tolist() == [1, 0]
    assert column(f, "skip").tolist() == [0, 1] and column(f, "skip_mask").tolist() == [0, 1]
    assert column(f, "like_mask").tolist() == [0, 1] and column(f, "like").tolist() == [0, 0]
    assert column(f, "sentiment").tolist() == [1.0, 0.0] and column(f, "sentiment_mask").tolist() == [1, 0]
    assert column(f, "consumed").tolist() == [1, 1]
    np.testing.assert_allclose(column(f, "recency"), [0.0, 1.0], atol=1e-6)


def test_invalid_engagements_give_zero_rows():
    values, arrived = feedback(click=1, rating=5)
    f = engagement_features(
        values[None, None].repeat(2, 1),
        arrived[None, None].repeat(2, 1),
        np.array([[True, False]]),
        np.full((1, 2), np.nan),
        np.ones((1, 2)),
        np.zeros((1, 2)),
        3.0,
    )
    assert f[0, 0].any() and not f[0, 1].any()


def test_slate_labels_value_feedback_with_the_reward_weights():
    worth = np.zeros(SIGNALS.count, np.float32)
    worth[Signal.CLICK], worth[Signal.RATING] = 1.0, 0.5
    shown = [feedback(click=1, rating=5), feedback(), feedback(click=1)]
    labels = slate_labels(
        np.stack([v for v, _ in shown])[None], np.stack([a for _, a in shown])[None], np.full((1, 3), np.nan), worth
    )
    assert labels["click"].tolist() == [[1, 0, 1]] and labels["click_mask"].all()
    np.testing.assert_allclose(labels["value"], [[1 + 0.5 * (5 - 3), 0, 1]])
    assert labels["value_mask"].tolist() == [[True, False, True]]
    assert labels["rating_mask"].tolist() == [[True, False, False]] and labels["rating"][0, 0] == 5


def test_slate_labels_mark_bought_items_as_purchases_on_every_shown_item():
    shown = [feedback(click=1, purchase=1, purchase_amount=20), feedback(click=1, add_to_cart=1), feedback()]
    labels = slate_labels(
        np.stack([v for v, _ in shown])[None],
        np.stack([a for _, a in shown])[None],
        np.full((1, 3), np.nan),
        np.zeros(SIGNALS.count, np.float32),
    )
    assert labels["purchase"].tolist() == [[1, 0, 0]] and labels["purchase_mask"].all()


def test_reward_weights_are_recovered_from_step_rewards():
    rng = np.random.default_rng(0)
    truth = np.zeros(SIGNALS.count)
    truth[[Signal.CLICK, Signal.DWELL_SECONDS, Signal.RATING]] = [1.0, 0.01, 0.5]
    model = RewardWeights()
    for _ in range(40):
        records = np.zeros(12, FEEDBACK_DTYPE)
        records["env_index"] = rng.integers(4, size=12)
        records["kind"] = rng.choice([Signal.CLICK, Signal.DWELL_SECONDS, Signal.RATING], size=12)
        records["value"] = rng.uniform(1, 5, size=12)
        gain = truth[records["kind"]] * (records["value"] - SIGNALS.neutral[records["kind"]])
        model.observe(records, np.bincount(records["env_index"], weights=gain, minlength=4))
    np.testing.assert_allclose(model.weights, truth, atol=1e-4)


def test_text_sentiment_learns_stars_from_observed_pairs(tiny):
    torch.manual_seed(0)
    sentiment = TextSentiment(tiny.encode, tiny.dim, lr=1e-2)
    texts = np.array(["Terrible, a waste of time.", None, "Excellent, loved every bit!"], dtype=object)
    ids = sentiment.ids(texts)
    assert ids[1] == -1 and ids[0] != ids[2]
    assert np.isnan(sentiment.stars(ids)[1])
    for _ in range(300):
        sentiment.fit(ids[[0, 2]], np.array([1.0, 5.0]))
    low, _, high = sentiment.stars(ids)
    assert low < 2.0 and high > 4.0
    assert sentiment.ids(np.array(["Excellent, loved every bit!"], dtype=object))[0] == ids[2]


# ---------------------------------------------------------------- replay


def records_for(*rows) -> np.ndarray:
    """Feedback records from ``(impression, position, item, kind, value)`` tuples."""
    out = np.zeros(len(rows), FEEDBACK_DTYPE)
    for r, (impression, position, item, kind, value) in zip(out, rows, strict=True):
        r["impression_id"], r["position"], r["item_index"] = impression, position, item
        r["kind"], r["value"] = kind, value
    return out


def replay_of(capacity=8, slate_size=2, memory_size=2, num_users=3) -> FeedbackReplay:
    return FeedbackReplay(
        capacity, slate_size, history_length=1, memory_size=memory_size, num_users=num_users, item_stats=1
    )


def show(replay, impressions, users, items, step, holdout=None) -> None:
    """Add impressions with empty history, zero item statistics and (by default) no hold-out."""
    n, k = len(impressions), len(items[0])
    held = np.zeros(n, bool) if holdout is None else np.asarray(holdout)
    replay.add(
        np.array(impressions), np.array(users), np.array(items), np.full((n, 1), -1), step, held, np.zeros((n, k, 1))
    )


def join(replay, *rows, now: int = 0) -> np.ndarray:
    """The rows the records ``(impression, position, item, kind, value)`` joined (arrived at step ``now``)."""
    return replay.join(records_for(*rows), np.full(len(rows), -1, np.int32), now)[0]


def trainable_rows(replay: FeedbackReplay, window: int, observed: int) -> list[int]:
    """Rows a learner may train on under ``Wait(window)`` once it has observed step ``observed``."""
    examples = ExampleLog(Wait(window=window), 4 * replay.capacity)
    live = np.flatnonzero(replay.serial >= 0)
    for row in live:
        examples.shown(replay.serial[[row]], int(replay.step[row]))
    chosen = examples.trainable(observed, replay.trainable)
    return sorted(replay.row_of(examples.ref[chosen]).tolist())


def test_late_feedback_joins_the_impression_and_slot_it_belongs_to():
    replay = replay_of(slate_size=3)
    show(replay, [10, 11], [0, 1], [[5, 6, 7], [8, 9, 4]], step=0)
    show(replay, [12, 13], [0, 1], [[1, 2, 3], [4, 5, 6]], step=1)
    rows = join(replay, (10, 2, 7, Signal.RATING, 4.0), (13, 0, 4, Signal.CLICK, 1.0), (99, 0, 1, Signal.CLICK, 1.0))
    assert rows.tolist() == [0, 3, -1]
    assert replay.arrived[0, 2, Signal.RATING] and replay.values[0, 2, Signal.RATING] == 4.0
    assert replay.arrived[3, 0, Signal.CLICK] and replay.arrived.sum() == 2
    assert replay.engagements(replay.user_memory[[0]]).items[0, -1] == 7


def test_a_record_whose_item_does_not_match_the_slot_is_not_joined():
    replay = replay_of()
    show(replay, [0], [0], [[3, 4]], step=0)
    assert join(replay, (0, 1, 3, Signal.CLICK, 1.0)).tolist() == [-1]
    assert not replay.arrived.any()


def test_memory_snapshots_exclude_later_feedback_and_skip_held_out_rows():
    replay = replay_of(memory_size=3)
    show(replay, [0], [1], [[3, 4]], step=0)
    join(replay, (0, 1, 4, Signal.CLICK, 1.0))
    show(replay, [1], [1], [[5, 6]], step=1, holdout=[True])
    join(replay, (1, 0, 5, Signal.CLICK, 1.0))
    show(replay, [2], [1], [[7, 8]], step=2)
    snapshot = replay.engagements(replay.memory[[0, 2]])
    assert not snapshot.valid[0].any()
    assert snapshot.items[1][snapshot.valid[1]].tolist() == [4]
    assert trainable_rows(replay, window=0, observed=2) == [0, 2]
    assert trainable_rows(replay, window=1, observed=2) == [0]


def test_overwritten_rows_leave_memories_and_the_id_map():
    replay = replay_of(capacity=2, slate_size=1)
    show(replay, [0], [0], [[3]], step=0)
    join(replay, (0, 0, 3, Signal.CLICK, 1.0))
    for impression in (1, 2):
        show(replay, [impression], [0], [[4]], step=impression)
    assert not replay.engagements(replay.user_memory[[0]]).valid.any()
    assert join(replay, (0, 0, 3, Signal.RATING, 5.0)).tolist() == [-1]


def test_a_new_epoch_forgets_impression_ids_but_keeps_rows():
    replay = replay_of(slate_size=1)
    show(replay, [0], [0], [[3]], step=0)
    replay.new_epoch()
    assert join(replay, (0, 0, 3, Signal.CLICK, 1.0)).tolist() == [-1]
    assert trainable_rows(replay, window=0, observed=4) == [0]


def test_item_stats_shrink_each_items_rates_toward_the_catalogue():
    stats = ItemStats(num_items=3)
    worth = np.zeros(SIGNALS.count)
    worth[Signal.CLICK] = 1.0
    for _ in range(50):
        stats.count_shown(np.array([0, 1]))
    stats.count_feedback(records_for(*[(0, 0, 0, Signal.CLICK, 1.0)] * 40, *[(0, 0, 1, Signal.CLICK, 1.0)] * 5))
    consumed, earned = stats.features(np.array([0, 1, 2]), worth).T
    assert consumed[0] > consumed[2] > consumed[1]
    assert earned[0] > earned[2] > earned[1] and earned[2] == pytest.approx(1.0)


# ---------------------------------------------------------------- network


def user_batch(n=3, k=4, p=5, h=2, items=20, seed=0) -> UserBatch:
    g = torch.Generator().manual_seed(seed)
    return UserBatch(
        items=torch.randint(0, items, (n, k), generator=g),
        item_stats=torch.randn(n, k, len(ITEM_STATS), generator=g),
        history=torch.randint(-1, items, (n, h), generator=g),
        memory_items=torch.randint(0, items, (n, p), generator=g),
        memory_features=torch.rand(n, p, len(feature_names()), generator=g),
        memory_valid=torch.rand(n, p, generator=g) > 0.3,
    )


def network(fusion: str, seed: int = 0, **kwargs) -> RecommenderNet:
    torch.manual_seed(seed)
    vectors, attributes = torch.randn(20, 6), torch.randn(20, 1)
    width = len(feature_names())
    return RecommenderNet(vectors, attributes, width, len(ITEM_STATS), fusion, dim=8, hidden=16, **kwargs)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_scores_every_head_and_learns(fusion):
    net, batch = network(fusion), user_batch()
    out = net(batch)
    assert out.shape == (3, 4, len(HEADS)) and expected_reward(out).shape == (3, 4)
    good = (batch.items % 2 == 0).float()
    labels = {"click": good, "value": 2 * good, "depth": good, "rating": 1 + 4 * good, "purchase": good}
    labels |= {f"{h}_mask": torch.ones(3, 4, dtype=torch.bool) for h in HEADS}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = sum(head_losses(net(batch), labels).values())
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_catalogue_too_large_to_project_whole_scores_and_learns_as_a_small_one(fusion, monkeypatch):
    """Above ``WHOLE_TABLE_ITEMS`` items only the batch's distinct items are projected: the same outputs and
    gradients as projecting the whole catalogue."""
    batch, results = user_batch(), []
    for whole in (network_module.WHOLE_TABLE_ITEMS, 0):
        monkeypatch.setattr(network_module, "WHOLE_TABLE_ITEMS", whole)
        net = network(fusion)
        out = net(batch)
        out.square().sum().backward()
        results.append((out.detach(), net.project.weight.grad.clone()))
    (whole_out, whole_grad), (distinct_out, distinct_grad) = results
    torch.testing.assert_close(distinct_out, whole_out)
    torch.testing.assert_close(distinct_grad, whole_grad)


def with_consumption_rates(batch: UserBatch, logits: torch.Tensor) -> UserBatch:
    """``batch`` with the ``consumed_logit`` statistic of its ``K`` items set to ``logits`` ``(K,)`` for every user."""
    stats = batch.item_stats.clone()
    stats[..., ITEM_STATS.index("consumed_logit")] = logits
    return UserBatch(**{**batch.__dict__, "item_stats": stats})


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two flat tensors (no ties)."""
    ranks = torch.stack([a.flatten().argsort().argsort(), b.flatten().argsort().argsort()]).float()
    return torch.corrcoef(ranks)[0, 1].item()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_untrained_click_and_purchase_heads_rank_items_by_their_own_consumption_rate(fusion):
    """Before any training the click and purchase logits order items as their consumption rates do, for every
    network seed (the fusion's own random response to the statistic has either sign: a rank correlation near 1 on
    ten seeds in a row comes from the offset, not from chance)."""
    logits = torch.linspace(-6.0, 6.0, 50)[torch.randperm(50, generator=torch.Generator().manual_seed(1))]
    for seed in range(10):
        batch = with_consumption_rates(user_batch(n=8, k=50, seed=seed), logits)
        with torch.no_grad():
            out = network(fusion, seed=seed)(batch)
        for head in ("click", "purchase"):
            rates = batch.item_stats[..., ITEM_STATS.index("consumed_logit")]
            assert rank_correlation(out[..., HEADS.index(head)], rates) > 0.95, (seed, head)


def test_without_purchases_the_purchase_head_has_no_consumption_offset():
    batch, buyer, non_buyer = user_batch(), network("multitask"), network("multitask", purchases=False)
    assert set(buyer.state_dict()) == set(non_buyer.state_dict())
    assert not any("offset" in key for key in buyer.state_dict())  # checkpoints from before the offset still load
    with torch.no_grad():
        buying, not_buying = buyer(batch), non_buyer(batch)
    purchase = HEADS.index("purchase")
    offset = batch.item_stats[..., ITEM_STATS.index("consumed_logit")]
    torch.testing.assert_close(buying[..., purchase] - not_buying[..., purchase], offset)
    others = [i for i in range(len(HEADS)) if i != purchase]
    torch.testing.assert_close(buying[..., others], not_buying[..., others])


def test_a_network_for_other_item_statistics_is_refused():
    with pytest.raises(ValueError, match=rf"num_item_stats=3; expected {len(ITEM_STATS)}.*'consumed_logit'"):
        RecommenderNet(torch.randn(20, 6), torch.randn(20, 1), len(feature_names()), 3)


def test_scores_depend_on_the_users_memory_and_session():
    net, batch = network("multitask"), user_batch()
    flipped = {"history": batch.history.flip(0), "memory_items": batch.memory_items.flip(0)}
    other = UserBatch(**{**batch.__dict__, **flipped})
    assert not torch.allclose(net(batch), net(other))


def test_the_rating_head_reads_only_heads_that_have_seen_labels():
    net, batch = network("multitask"), user_batch()
    labels = {h: torch.zeros(2) for h in HEADS} | {f"{h}_mask": torch.tensor([True, True]) for h in HEADS}
    net.track_labels(labels | {"depth_mask": torch.tensor([False, False])})
    before = net(batch)[..., HEADS.index("rating")]
    with torch.no_grad():
        net.item_bias.weight[:, FUSED_HEADS.index("depth")] += 5.0
    torch.testing.assert_close(net(batch)[..., HEADS.index("rating")], before)
    net.track_labels(labels)
    assert not torch.allclose(net(batch)[..., HEADS.index("rating")], before)


def test_text_similarity_matches_memory_and_session():
    axes = torch.eye(3)
    text = axes[[0, 1]][None]  # two candidates: along axis 0 and axis 1
    past = axes[[0, 2, 1, 0]][None]  # memory: axis 0, axis 2; history: axis 1, then axis 0 (last)
    weight = torch.tensor([[3.0, 1.0]])
    sims = text_similarity(text, past, weight, torch.tensor([[True, True]]))
    torch.testing.assert_close(sims[0, 0], torch.tensor([0.75, 1.0, 0.5, 1.0]))
    torch.testing.assert_close(sims[0, 1], torch.tensor([0.0, 0.0, 0.5, 0.0]))
    unseen = text_similarity(text, past, torch.zeros(1, 2), torch.tensor([[False, False]]))
    assert not unseen.any()


def test_masked_labels_do_not_contribute_to_the_loss():
    out = torch.zeros(1, 2, len(HEADS))
    labels = {h: torch.tensor([[0.0, 1.0]]) for h in HEADS} | {
        f"{h}_mask": torch.tensor([[True, False]]) for h in HEADS
    }
    labels["rating"] = torch.tensor([[3.0, 1.0]])
    losses = head_losses(out, labels)
    assert losses["rating"].item() == 0.0 and losses["value"].item() == 0.0
    np.testing.assert_allclose(losses["click"].item(), np.log(2), rtol=1e-6)


def test_rating_head_predicts_offsets_from_the_mean_rating():
    out = torch.zeros(1, 2, len(HEADS))
    out[0, 1, HEADS.index("rating")] = 0.25
    torch.testing.assert_close(predicted_stars(out, center=4.2), torch.tensor([[4.2, 4.7]]))
    labels = {h: torch.zeros(1, 2) for h in HEADS} | {f"{h}_mask": torch.tensor([[True, True]]) for h in HEADS}
    labels["rating"] = torch.tensor([[4.2, 4.7]])
    assert head_losses(out, labels, rating_center=4.2)["rating"].item() < 1e-12
    assert head_losses(out, labels, rating_center=3.0)["rating"].item() > 0.3


def test_weighted_fusion_with_fixed_weights_does_not_learn_them():
    net = network("weighted", fusion_weights={"item": 0.0, "profile": 2.0})
    assert "fuse.weights" not in dict(net.named_parameters())
    assert net.fuse.weights.tolist() == [0.0, 2.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="fusion_weights has unknown source"):
        network("weighted", fusion_weights={"colour": 1.0})


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="unknown fusion 'late'"):
        network("late")


def test_the_value_head_predicts_in_units_of_the_running_value_scale():
    net, batch = network("concat"), user_batch()
    assert net.value_scale().item() == 1.0
    before = net(batch)[..., HEADS.index("value")]
    labels = {f"{h}_mask": torch.tensor([True, True]) for h in HEADS} | {"value": torch.tensor([3.0, -3.0])}
    net.track_labels(labels)
    assert net.value_scale().item() == pytest.approx(3.0)
    torch.testing.assert_close(net(batch)[..., HEADS.index("value")], 3 * before)


# ---------------------------------------------------------------- the real MiniLM


@pytest.mark.slow
def test_real_minilm_puts_close_texts_closer_than_unrelated_ones(monkeypatch):
    forbid_network(monkeypatch)
    encoder = TextEncoder.load("minilm", device="cpu")
    a, b, c = encoder.encode(
        [
            "The striker scored twice as the football league title race tightened",
            "A late goal decided the championship match for the soccer club",
            "Central bank raises interest rates to fight inflation",
        ]
    )
    assert encoder.dim == 384
    assert a @ b > a @ c + 0.1 and a @ b > b @ c + 0.1
