"""The BERT agent with the tiny in-process BERT: settings, acting, joining late feedback, fine-tuning
modes, persistence, determinism and the Hydra config."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from sklearn.metrics import roc_auc_score

from agents.base import Task, Transition
from agents.bert import BertAgent
from agents.examples import SILENT
from agents.labels import FakeNegativeWeighted, Immediate, Wait
from agents.loop import run_online
from agents.slates import build_slates
from envs.domains.news import NEWS
from envs.feedback import FEEDBACK_DTYPE
from envs.signals import SIGNALS, Role, Signal
from experiments import config  # noqa: F401  (registers the env schema that conf/ composes with)

CONF = Path(__file__).resolve().parents[1] / "conf"
WORLD = {"num_items": 120, "num_users": 60, "num_candidates": 10, "slate_size": 3}
FAST = {
    "encoder": "tiny",
    "batch_size": 16,
    "buffer_size": 4000,
    "dim": 8,
    "hidden": 16,
    "memory_size": 4,
    "holdout_fraction": 0.0,
    "device": "cpu",
    "replay_ratio": 4.0,  # 4 sessions x 4 = one minibatch of 16 per step
}


def make_env(num_envs: int = 4, domain: str = "News", **kwargs):
    return gym.make_vec(
        f"FeedbackRec/{domain}-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **{**WORLD, **kwargs}
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("embeddings"))


def make_agent(env, cache_dir: str, seed: int = 0, label=None, **settings) -> BertAgent:
    label = Wait(window=2) if label is None else label
    return BertAgent(Task.of(env), seed=seed, label=label, cache_dir=cache_dir, **{**FAST, **settings})


def train(agent: BertAgent, env, steps: int, seed: int = 0) -> list[dict[str, float]]:
    """Run the online loop by hand; returns every update's losses."""
    losses = []
    obs, _ = env.reset(seed=seed)
    agent.attach(env)
    for _ in range(steps):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        agent.observe(step)
        next_obs = step.next_obs
        losses.append(agent.update())
        obs = next_obs
    return losses


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("fusion", "late", "unknown fusion 'late'"),
        ("finetune", "adapters", "unknown finetune 'adapters'"),
        ("label", "guess", "label='guess'; expected an agents.labels.LabelStrategy"),
        ("exploration", "ucb", "unknown exploration 'ucb'"),
        ("lr", 0.0, "lr=0.0; expected a number > 0"),
        ("lr", -1e-3, "lr=-0.001"),
        ("batch_size", 0, "batch_size=0; expected an integer > 0"),
        ("batch_size", 2.5, "batch_size=2.5"),
        ("epsilon", 1.5, "epsilon=1.5"),
        ("loss_weights", {"clicks": 1.0}, "loss_weights has unknown head"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(cache_dir, setting, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_agent(make_env(), cache_dir, **{setting: value})


def test_an_unknown_setting_is_named():
    with pytest.raises(TypeError, match=r"unknown BertAgent setting.*'learning_rate'"):
        BertAgent(Task.of(make_env()), learning_rate=0.1)


def test_an_unwritable_cache_dir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"cache_dir=.*not a writable directory"):
        BertAgent(Task.of(make_env()), **{**FAST, "cache_dir": str(blocker / "sub")})


# ---------------------------------------------------------------- acting


def test_act_returns_distinct_candidates_and_is_greedy_without_exploration(cache_dir):
    env = make_env(num_envs=6)
    agent = make_agent(env, cache_dir, epsilon=0.5)
    obs, _ = env.reset(seed=0)
    slates = agent.act(obs)
    assert slates.shape == (6, 3) and slates.dtype == np.int64
    assert all(len(set(row)) == 3 for row in slates.tolist()) and slates.max() < 10
    greedy = agent.act(obs, explore=False)
    np.testing.assert_array_equal(greedy, agent.act(obs, explore=False))
    scores = agent.score(obs["candidates"], obs["history"], obs["user_id"][:, 0])
    np.testing.assert_array_equal(greedy, np.argsort(-scores, axis=1, kind="stable")[:, :3])


def test_predictions_of_the_served_slates_reuse_the_serving_scores_until_the_agent_observes(cache_dir, monkeypatch):
    env = make_env(num_envs=6)
    agent = make_agent(env, cache_dir)
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    action = agent.act(obs)
    fresh = agent._heads(np.take_along_axis(obs["candidates"], action, axis=1), obs["history"], obs["user_id"][:, 0])
    computed = []
    monkeypatch.setattr(agent, "_heads", lambda *a: computed.append(1) or fresh)
    torch.testing.assert_close(agent._shown_outputs(obs, action, None), fresh)
    sessions = np.array([1, 4])  # the streaming evaluation's sample: its rows of the same
    torch.testing.assert_close(agent._shown_outputs(obs, action, sessions), fresh[torch.as_tensor(sessions)])
    every, sampled = agent.predict(obs, action), agent.predict(obs, action, sessions)
    for head in ("click", "purchase", "rating"):
        np.testing.assert_array_equal(sampled[head], every[head][sessions])
    assert not computed  # read from what act scored
    step = env.step(action)
    agent.observe(Transition.of(env, obs, action, step))
    agent.predict(obs, action)
    assert computed  # the agent has observed since: computed again


def test_an_env_with_another_slate_size_fails_at_once_naming_both(cache_dir):
    agent = make_agent(make_env(), cache_dir)
    with pytest.raises(ValueError, match=r"slate_size=3.*size 4"):
        agent.attach(make_env(slate_size=4))
    env = make_env()
    obs, _ = env.reset(seed=0)
    wrong = np.zeros((4, 2), np.int64)
    transition = Transition(obs, wrong, np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), {}, obs)
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*\(4, 3\)"):
        agent.observe(transition)


def test_build_slates_mmr_trades_relevance_for_diversity():
    scores = np.array([[1.0, 0.99, 0.5, 0.1]])
    similarity = np.eye(4)
    similarity[0, 1] = similarity[1, 0] = 1.0
    rng = np.random.default_rng(0)
    assert build_slates(scores, 2, rng).tolist() == [[0, 1]]
    assert build_slates(scores, 2, rng, similarity=similarity[None], mmr_lambda=0.5).tolist() == [[0, 2]]


def test_build_slates_exploration_stays_distinct_and_seeded():
    scores = np.tile(np.arange(8.0), (50, 1))
    for kwargs in ({"epsilon": 1.0}, {"temperature": 1.0}):
        a = build_slates(scores, 4, np.random.default_rng(3), **kwargs)
        b = build_slates(scores, 4, np.random.default_rng(3), **kwargs)
        np.testing.assert_array_equal(a, b)
        assert all(len(set(row)) == 4 for row in a.tolist())
        assert (a != [7, 6, 5, 4]).any()
    cold = build_slates(scores, 4, np.random.default_rng(3), temperature=1e-6)
    assert (cold == [7, 6, 5, 4]).all()


# ---------------------------------------------------------------- observing and labels


def records(*rows) -> np.ndarray:
    """Feedback records from ``(impression, env, position, item, kind, value, text_id)``."""
    out = np.zeros(len(rows), FEEDBACK_DTYPE)
    for r, (impression, env, position, item, kind, value, text) in zip(out, rows, strict=True):
        r["impression_id"], r["env_index"], r["position"], r["item_index"] = impression, env, position, item
        r["kind"], r["value"], r["text_id"] = kind, value, text
    return out


def test_late_feedback_trains_the_impression_it_belongs_to(cache_dir):
    env = make_env(num_envs=2)
    agent = make_agent(env, cache_dir)
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    first = agent.act(obs)
    shown = np.take_along_axis(obs["candidates"], first, axis=1)
    none = records()
    step = lambda action, ids, feedback: Transition(  # noqa: E731
        obs,
        action,
        np.zeros(2),
        np.zeros(2, bool),
        np.zeros(2, bool),
        {"impression_id": ids},
        obs,
        feedback,
    )
    agent.observe(step(first, np.array([100, 101]), none))
    agent.observe(step(first, np.array([102, 103]), none))
    late = records((101, 1, 2, shown[1, 2], Signal.RATING, 2.0, -1), (101, 1, 2, shown[1, 2], Signal.COMMENT, 1.0, 5))
    agent.observe(step(first, np.array([104, 105]), late))
    replay = agent.replay
    row = int(np.flatnonzero(replay.impression == 101)[0])
    assert replay.values[row, 2, Signal.RATING] == 2.0 and replay.arrived[row].sum() == 2
    assert replay.arrived.sum() == 2 and replay.text[row, 2] >= 0
    assert agent.sentiment.stars(replay.text[[row], [2]]).shape == (1,)


def test_wait_holds_back_young_impressions_that_immediate_trains_on(cache_dir):
    env = make_env(num_envs=8)
    waiting = make_agent(env, cache_dir, label=Wait(window=5), batch_size=8)
    eager = make_agent(env, cache_dir, label=Immediate(), batch_size=8)
    assert all(not loss for loss in train(waiting, env, 5))
    assert train(eager, env, 1)[0]["click_loss"] > 0
    assert train(waiting, env, 7)[-1]["click_loss"] > 0


def test_gradient_steps_follow_the_impressions_not_the_calls(cache_dir):
    """The same 512 impressions train the same number of minibatches whether 4 or 16 sessions brought them, and
    whether update() ran after every step or every fourth."""
    steps = []
    for sessions, calls, every in ((4, 128, 1), (16, 32, 1), (16, 32, 4)):
        env = make_env(num_envs=sessions, delays="none")
        agent = make_agent(env, cache_dir, label=Immediate(), replay_ratio=2.0)
        obs, _ = env.reset(seed=0)
        agent.attach(env)
        for call in range(calls):
            action = agent.act(obs)
            step = Transition.of(env, obs, action, env.step(action))
            agent.observe(step)
            if call % every == every - 1:
                agent.update()
            obs = step.next_obs
        steps.append(agent.updates)
    assert steps[0] == pytest.approx(512 * 2 / 16, abs=2) and steps[0] == pytest.approx(steps[1], abs=2), steps
    assert steps[1] == pytest.approx(steps[2], abs=2), steps


def test_reward_weights_are_learnt_from_the_environment(cache_dir):
    env = make_env(num_envs=8)
    agent = make_agent(env, cache_dir)
    train(agent, env, 60)
    expected = np.zeros(SIGNALS.count)
    for name, weight in NEWS.reward_weights.items():
        expected[SIGNALS.parse(name)] = weight
    observed = [Signal.CLICK, Signal.DWELL_SECONDS, Signal.SHARE]
    np.testing.assert_allclose(agent.rewards.weights[observed], expected[observed], atol=1e-3)


def test_held_out_ratings_are_measured_against_the_global_mean(cache_dir):
    env = make_env(num_envs=8, rating_propensity=0.9, delays="none")
    agent = make_agent(env, cache_dir, holdout_fraction=0.3)
    train(agent, env, 40)
    report = agent.rating_errors()
    assert report["rating_holdout_count"] > 0
    assert report["rating_rmse"] > 0 and report["rating_rmse_global_mean"] > 0
    held = agent.replay.holdout
    memory = agent.replay.user_memory[agent.replay.user_memory >= 0]
    assert not held[(memory // 3) % agent.replay.capacity].any()


# ---------------------------------------------------------------- fine-tuning modes


def encoder_state(agent: BertAgent) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in agent.encoder.state_dict().items()}


def test_head_mode_leaves_bert_untouched_and_trains_the_network(cache_dir):
    env = make_env()
    agent = make_agent(env, cache_dir, finetune="head", label=Immediate())
    bert, net = encoder_state(agent), {k: v.clone() for k, v in agent.net.state_dict().items()}
    losses = [loss for loss in train(agent, env, 12) if loss]
    assert losses and all(np.isfinite(v) for loss in losses for v in loss.values())
    assert all(torch.equal(v, agent.encoder.state_dict()[k]) for k, v in bert.items())
    assert not torch.equal(net["project.weight"], agent.net.project.weight)


def test_lora_mode_changes_the_adapters_and_not_the_base_weights(cache_dir):
    env = make_env()
    agent = make_agent(env, cache_dir, finetune="lora", label=Immediate(), refresh_every=4, encoder_lr=1e-2)
    before = encoder_state(agent)
    table = agent.net.match_table.clone()
    train(agent, env, 10)
    after = agent.encoder.state_dict()
    adapters = [k for k in before if "lora_" in k]
    base = [k for k in before if "lora_" not in k]
    assert adapters and base
    assert any(not torch.equal(before[k], after[k]) for k in adapters)
    assert all(torch.equal(before[k], after[k]) for k in base)
    assert not torch.equal(table, agent.net.match_table)


def test_a_fine_tuning_step_encodes_a_sample_of_items_and_refreshes_only_their_table_rows(cache_dir):
    """With ``text_items=3`` a step that fine-tunes the encoder encodes 3 distinct items of its minibatch with
    gradients: their rows of the item table become their new embeddings, every other row stays."""
    env = make_env()
    agent = make_agent(env, cache_dir, finetune="lora", label=Immediate(), text_every=1, text_items=3, encoder_lr=1e-2)
    table = agent.net.match_table.clone()
    encoded = []
    fresh_vectors = agent.text.fresh_vectors

    def recorded(*args):
        vectors, items = fresh_vectors(*args)
        encoded.append(items)
        return vectors, items

    agent.text.fresh_vectors = recorded
    train(agent, env, 6)
    assert len(encoded) == agent.updates >= 2 and all(len(np.unique(items)) == 3 for items in encoded)
    everything = np.unique(np.concatenate(encoded))
    changed = np.flatnonzero((agent.net.match_table != table).any(1).numpy())
    assert set(changed.tolist()) == set(everything.tolist())
    kept = agent.net.match_vectors(torch.as_tensor(agent.text.vectors[everything]))
    assert torch.allclose(agent.net.match_table[everything], kept, atol=1e-6)
    assert not np.array_equal(agent.text.vectors[encoded[-1]], agent.text.pretrained_vectors[encoded[-1]])


def test_adalora_mode_trains_its_adapters_and_prunes_their_rank(cache_dir):
    """AdaLoRA through peft: its SVD adapters train, the base weights do not, and its rank allocator runs on the
    fine-tuning steps (after its schedule some singular values are masked to zero)."""
    env = make_env()
    agent = make_agent(
        env, cache_dir, finetune="adalora", label=Immediate(), text_every=1, encoder_lr=1e-2, adalora_steps=10
    )
    before = encoder_state(agent)
    train(agent, env, 16)
    after = agent.encoder.state_dict()
    adapters = [k for k in before if "lora_" in k]
    assert adapters and agent.text.steps == agent.updates > 10
    assert any(not torch.equal(before[k], after[k]) for k in adapters)
    assert all(torch.equal(before[k], after[k]) for k in before if "lora_" not in k)
    singular = [v for k, v in after.items() if k.endswith("lora_E.default")]
    assert singular and sum(int((v == 0).sum()) for v in singular) > 0, "no rank was pruned"


def test_full_mode_fine_tunes_the_base_weights(cache_dir):
    env = make_env()
    agent = make_agent(env, cache_dir, finetune="full", label=Immediate(), encoder_lr=1e-2)
    before = encoder_state(agent)
    train(agent, env, 6)
    key = "model.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], agent.encoder.state_dict()[key])


# ---------------------------------------------------------------- persistence and determinism


def test_save_load_round_trip_restores_scores_memory_and_the_rng(cache_dir, tmp_path):
    env = make_env()
    agent = make_agent(env, cache_dir, label=Immediate(), finetune="lora")
    train(agent, env, 12)
    agent.save(tmp_path / "ckpt")
    clone = make_agent(env, cache_dir, seed=99, label=Immediate(), finetune="lora")
    clone.load(tmp_path / "ckpt")
    obs, _ = make_env().reset(seed=5)
    args = obs["candidates"], obs["history"], obs["user_id"][:, 0]
    np.testing.assert_array_equal(agent.score(*args), clone.score(*args))
    np.testing.assert_array_equal(agent.replay.user_memory, clone.replay.user_memory)
    np.testing.assert_array_equal(agent.act(obs), clone.act(obs))
    continued = [train(twin, make_env(), 3, seed=7) for twin in (agent, clone)]  # the same data after the load
    assert continued[0] == continued[1] and any(continued[0])


def test_load_refuses_a_checkpoint_of_another_shape(cache_dir, tmp_path):
    env = make_env()
    make_agent(env, cache_dir).save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"different settings.*'dim'"):
        make_agent(env, cache_dir, dim=4).load(tmp_path / "ckpt")


def test_same_seed_same_run(cache_dir):
    runs = []
    for _ in range(2):
        env = make_env()
        agent = make_agent(env, cache_dir, label=Immediate(), exploration="softmax")
        runs.append((train(agent, env, 8, seed=3), agent.net.project.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_the_agent_keeps_torch_on_its_threads_whatever_changed_them(cache_dir):
    """An OpenMP launch elsewhere in the process (the simulator's kernels) may change torch's thread count; the
    agent sets its own back before it acts and before it learns."""
    env = make_env()
    agent = make_agent(env, cache_dir, cpu_threads=1)
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    before = torch.get_num_threads()
    try:
        for work in (lambda: agent.act(obs), agent.update):
            torch.set_num_threads(2)
            work()
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_thousand_sessions_train_side_by_side_the_same_way_twice(cache_dir):
    """1,024 sessions at once (the learner-speed benchmark's largest batch): three batched steps through the online
    loop take the minibatch steps their impressions call for, and a second run with the same seed ends with the
    same weights, bit for bit."""
    weights = []
    for _ in range(2):
        env = make_env(num_envs=1024, num_users=2048, delays="none")
        agent = make_agent(env, cache_dir, label=Immediate(), batch_size=256, replay_ratio=0.25)
        assert run_online(agent, env, 3 * 1024, seed=5, progress=False) == 3 * 1024
        assert agent.updates == 3  # 1,024 impressions x 0.25 per call = one step of 256 after each of 3 calls
        weights.append({k: v.clone() for k, v in agent.net.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("domain", ["News", "Ecommerce", "Music", "Video"])
def test_every_domain_trains_through_the_online_loop(cache_dir, domain):
    env = make_env(domain=domain)
    agent = make_agent(env, cache_dir, fusion="weighted")
    assert run_online(agent, env, 80, progress=False) >= 80
    assert agent.updates > 0 and np.isfinite(agent.net.project.weight.detach().numpy()).all()


def test_the_agent_learns_to_beat_random_slates(cache_dir):
    """A small world where ranking by learnt reward must beat random picks on fresh users."""
    env = make_env(num_envs=16, num_users=400, delays="none")
    agent = make_agent(env, cache_dir, label=Immediate(), batch_size=64, dim=16, hidden=32, lr=3e-3)
    train(agent, env, 150)
    test_env = make_env(num_envs=64, num_users=400, delays="none")
    obs, _ = test_env.reset(seed=11)
    rewards = {}
    for name, slate in (("agent", agent.act(obs, explore=False)), ("random", np.tile(np.arange(3), (64, 1)))):
        rewards[name] = np.take_along_axis(test_env.unwrapped.candidate_utility(), slate, axis=1).mean()
    assert rewards["agent"] > rewards["random"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_click_head_tells_often_clicked_items_from_rarely_clicked_ones_within_a_few_dozen_steps(cache_dir, seed):
    """After 30 steps of 16 sessions, the items clicked more often than the median when shown (8 times or more)
    get higher click probabilities than the others: the click logit starts from each item's consumption rate."""
    env = make_env(num_envs=16, num_items=60, num_users=200, delays="none")
    agent = make_agent(env, cache_dir, seed=seed, label=Immediate())
    shown, clicked = np.zeros(60), np.zeros(60)
    consumption = list(SIGNALS.with_role(Role.CONSUMPTION))
    obs, _ = env.reset(seed=seed)
    agent.attach(env)
    for _ in range(30):
        action = agent.act(obs)
        step = Transition.of(env, obs, action, env.step(action))
        np.add.at(shown, np.take_along_axis(obs["candidates"], action, axis=1).ravel(), 1.0)
        records = step.arrived_feedback()
        np.add.at(clicked, records["item_index"][np.isin(records["kind"], consumption)], 1.0)
        agent.observe(step)
        agent.update()
        obs = step.next_obs
    items = np.flatnonzero(shown >= 8)
    rate = clicked[items] / shown[items]
    candidates = np.tile(items, (len(obs["candidates"]), 1))
    slates = np.tile(np.arange(len(items)), (len(candidates), 1))
    click = agent.predict({**obs, "candidates": candidates}, slates)["click"].mean(0)
    assert len(items) >= 20 and roc_auc_score(rate > np.median(rate), click) > 0.9


# ---------------------------------------------------------------- Hydra


def test_the_hydra_config_builds_the_agent(cache_dir):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "agent=bert",
                "agent.encoder=tiny",
                f"agent.cache_dir={cache_dir}",
                "agent.dim=8",
                "agent.hidden=16",
            ],
        )
    env = make_env()
    agent = instantiate(cfg.agent, _partial_=True)(task=Task.of(env), seed=0)
    assert isinstance(agent, BertAgent) and agent.settings.fusion == "multitask"
    assert isinstance(agent.settings.loss_weights, dict)


def test_under_label_positive_purchase_the_purchase_is_the_positive_and_a_fake_negative_keeps_its_click(cache_dir):
    env = make_env(num_envs=2, domain="Ecommerce")
    agent = make_agent(env, cache_dir, label=FakeNegativeWeighted(positive="purchase"))
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    action = agent.act(obs)
    shown = np.take_along_axis(obs["candidates"], action, axis=1)
    step = lambda ids, feedback: Transition(  # noqa: E731
        obs, action, np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), {"impression_id": ids}, obs, feedback
    )
    click = records((100, 0, 1, shown[0, 1], Signal.CLICK, 1.0, -1))
    agent.observe(step(np.array([100, 101]), click))
    agent.observe(step(np.array([102, 103]), records()))
    agent.observe(step(np.array([104, 105]), records()))
    agent.observe(step(np.array([106, 107]), records((100, 0, 1, shown[0, 1], Signal.PURCHASE, 1.0, -1))))
    delays = agent.examples.delays.counts
    assert delays.sum() == 1 and delays[3] == 1  # the purchase, 3 steps after showing; the click is no positive
    row = agent.replay.row_of(agent.examples.ref[:1])
    negative = agent._arrived_as_of(row, np.array([SILENT]))
    assert negative[0, 1, Signal.CLICK] and not negative[0, 1, Signal.PURCHASE]
    assert set(agent.predict(obs, action)) == {"click", "purchase", "rating"}


def test_a_purchase_positive_is_refused_in_a_domain_without_purchases(cache_dir):
    with pytest.raises(ValueError, match=r"label.positive='purchase', but the news domain has no purchase signal"):
        make_agent(make_env(num_envs=1), cache_dir, label=FakeNegativeWeighted(positive="purchase"))
