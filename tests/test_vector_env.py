"""The native batched environment: spaces, autoreset, equivalence with the single env, bad input."""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import DictInfoToList, RecordEpisodeStatistics

from envs import as_records
from envs.dynamics import step
from envs.simulator import PARALLEL_FROM
from tests.conftest import SMALL


def make_vec(env_id: str, num_envs: int, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **{**SMALL, **kwargs})


def random_slates(rng, batch: int, m: int = 20, k: int = 5) -> np.ndarray:
    return np.argsort(rng.random((batch, m)), axis=1)[:, :k]


def test_spaces_are_the_single_env_spaces_batched(env_id):
    vec, single = make_vec(env_id, 8), gym.make(env_id, **SMALL)
    assert vec.single_observation_space == single.observation_space
    assert vec.single_action_space == single.action_space
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = vec.reset(seed=0)
    assert obs in vec.observation_space
    obs, reward, terminated, truncated, info = vec.step(random_slates(np.random.default_rng(0), 8))
    assert obs in vec.observation_space and reward.shape == terminated.shape == truncated.shape == (8,)
    assert info["utility"].shape == info["masked_positions"].shape == (8, 5)


def test_sessions_autoreset_in_the_same_step():
    vec = make_vec("FeedbackRec/News-v0", 16)
    rng = np.random.default_rng(0)
    obs, _ = vec.reset(seed=0)
    users = obs["user_id"][:, 0].copy()
    ended = 0
    for _ in range(200):
        obs, _, terminated, truncated, info = vec.step(random_slates(rng, 16))
        done = terminated | truncated
        if done.any():
            ended += done.sum()
            assert np.array_equal(info["_final_obs"], done)
            assert [row["user_id"][0] for row in info["final_obs"][done]] == users[done].tolist()
            assert (obs["history"][done] == -1).all()
        users = obs["user_id"][:, 0].copy()
        assert len(np.unique(users)) == 16, "a user is in two sessions at once"
    assert ended > 16


def assert_same(first, second, where: str = "") -> None:
    """Equal arrays, numbers and (nested) mappings of them."""
    if isinstance(first, Mapping):
        assert first.keys() == second.keys(), where
        for key in first:
            assert_same(first[key], second[key], f"{where}[{key!r}]")
    elif isinstance(first, tuple) or (isinstance(first, np.ndarray) and first.dtype == object):
        assert len(first) == len(second), where
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif first is None:
        assert second is None, where
    else:
        np.testing.assert_array_equal(first, second, err_msg=where)


def test_threaded_and_serial_kernels_step_alike_bit_for_bit():
    """Batches of PARALLEL_FROM sessions or more are stepped on numba's threads; the result must not change."""
    threaded, serial = (make_vec("FeedbackRec/Video-v0", PARALLEL_FROM, num_users=4 * PARALLEL_FROM) for _ in range(2))
    serial.unwrapped.sim._kernel = step
    assert threaded.unwrapped.sim._kernel is not step
    rng = np.random.default_rng(4)
    assert_same(threaded.reset(seed=4), serial.reset(seed=4))
    for t in range(40):
        slates = random_slates(rng, PARALLEL_FROM)
        assert_same(threaded.step(slates), serial.step(slates), f"step {t}")
        assert_same(threaded.unwrapped.delivered, serial.unwrapped.delivered, f"step {t}: delivered")


def test_observations_handed_out_are_never_written_again():
    """Agents may keep observations (replay buffers do); the env must not change them behind their back."""
    vec = make_vec("FeedbackRec/News-v0", 16, max_episode_steps=5)
    rng = np.random.default_rng(3)
    obs, _ = vec.reset(seed=3)
    kept = [(obs, {key: value.copy() for key, value in obs.items()})]
    for _ in range(30):
        obs, _, _, _, info = vec.step(random_slates(rng, 16))
        ended = info["final_obs"][info["_final_obs"]] if "final_obs" in info else []
        for handed_out in (obs, *ended):
            kept.append((handed_out, {key: value.copy() for key, value in handed_out.items()}))
    vec.reset()
    for held, copy in kept:
        for key in copy:
            np.testing.assert_array_equal(held[key], copy[key], err_msg=key)


def test_final_observations_are_the_ended_sessions_last_rows():
    """``info["final_obs"]`` holds, where ``_final_obs``, each ended session's last observation (views of one set
    of compact rows), None elsewhere; those rows continue the sessions' previous observation."""
    vec = make_vec("FeedbackRec/News-v0", 16)
    rng = np.random.default_rng(2)
    obs, _ = vec.reset(seed=2)
    done = np.zeros(16, bool)
    while not done.any() or done.all():
        last = obs
        obs, _, terminated, truncated, info = vec.step(random_slates(rng, 16))
        done = terminated | truncated
    final = info["final_obs"]
    assert final.shape == (16,) and all(row is None for row in final[~done])
    for i in np.flatnonzero(done):
        assert set(final[i]) == set(obs) and final[i]["user_id"] == last["user_id"][i]
        assert not np.array_equal(final[i]["candidates"], obs["candidates"][i])
    compact = final[np.flatnonzero(done)[0]].rows
    assert all(final[i].rows is compact for i in np.flatnonzero(done))


def test_gymnasiums_vector_wrappers_read_the_info():
    """Every ``info`` value has one entry per sub-env, so Gymnasium's standard vector wrappers work."""
    vec = RecordEpisodeStatistics(make_vec("FeedbackRec/News-v0", 8, max_episode_steps=6))
    listed = DictInfoToList(vec)
    rng = np.random.default_rng(5)
    _, infos = listed.reset(seed=5)
    assert len(infos) == 8 and all(info["feedback_count"] >= 0 for info in infos)
    episodes = 0
    for _ in range(12):
        _, _reward, terminated, truncated, infos = listed.step(random_slates(rng, 8))
        assert len(infos) == 8
        for info, done in zip(infos, terminated | truncated, strict=True):
            assert ("episode" in info) == done and ("final_obs" in info) == done
            episodes += done
            if done:
                assert info["episode"]["l"] <= 6 and set(info["final_obs"]) >= {"candidates", "user_id"}
    assert episodes >= 8
    delivered = vec.unwrapped.delivered
    counts = np.bincount(np.concatenate([delivered.arrived, delivered.released])["env_index"], minlength=8)
    np.testing.assert_array_equal(counts, [info["feedback_count"] for info in infos])


def test_one_sub_env_follows_the_single_env_trajectory(env_id):
    """With num_envs=1 and the same seed, the batched env replays the single env exactly (the
    single env reset right after each session end, as autoreset does)."""
    single, vec = gym.make(env_id, **SMALL), make_vec(env_id, 1)
    rng = np.random.default_rng(3)
    obs_s, _ = single.reset(seed=9)
    obs_v, _ = vec.reset(seed=9)
    for _ in range(300):
        slate = random_slates(rng, 1)
        obs_v, reward_v, term_v, trunc_v, _info_v = vec.step(slate)
        obs_s, reward_s, term_s, trunc_s, info_s = single.step(slate[0])
        assert reward_s == reward_v[0] and term_s == term_v[0] and trunc_s == trunc_v[0]
        assert as_records(info_s["feedback"]).tobytes() == vec.unwrapped.delivered.arrived.tobytes()
        if term_s or trunc_s:
            obs_s, info_s = single.reset()
            assert as_records(info_s["feedback"]).tobytes() == vec.unwrapped.delivered.released.tobytes()
        for key in obs_s:
            assert np.array_equal(obs_s[key], obs_v[key][0]), key


def session_statistics(steps: list[tuple]) -> dict[str, float]:
    clicks = np.mean([c >= 0 for c, _, _ in steps])
    ratings = [v for _, r, _ in steps for v in r]
    lengths = [n for _, _, n in steps if n]
    return {"ctr": clicks, "rating": np.mean(ratings), "length": np.mean(lengths)}


def test_batched_and_single_env_agree_in_distribution():
    env_id, rng = "FeedbackRec/Video-v0", np.random.default_rng(0)
    vec = make_vec(env_id, 256, rating_propensity=0.3, delays="none", num_users=1000)
    vec.reset(seed=1)
    batched = []
    lengths, started = np.zeros(256, int), np.zeros(256, int)
    for t in range(200):
        _, _, terminated, truncated, info = vec.step(random_slates(rng, 256))
        lengths += 1
        records = vec.unwrapped.delivered.arrived
        done = terminated | truncated
        # sessions started late would be cut off by the end of the run (censoring shortens them): count
        # only those started in the first 80 steps, all of which end long before step 200
        counted = done & (started < 80)
        for b in range(256):
            rated = records["value"][(records["env_index"] == b) & (records["kind"] == 12)]
            batched.append((info["choice"][b], rated, lengths[b] if counted[b] else 0))
        lengths[done], started[done] = 0, t + 1
    single = gym.make(env_id, rating_propensity=0.3, delays="none", **{**SMALL, "num_users": 1000})
    single.reset(seed=2)
    alone, length = [], 0
    for _ in range(20_000):
        _, _, terminated, truncated, info = single.step(random_slates(rng, 1)[0])
        length += 1
        records = as_records(info["feedback"])
        alone.append(
            (info["choice"], records["value"][records["kind"] == 12], length if terminated or truncated else 0)
        )
        if terminated or truncated:
            single.reset()
            length = 0
    a, b = session_statistics(batched), session_statistics(alone)
    assert abs(a["ctr"] - b["ctr"]) < 0.02
    assert abs(a["rating"] - b["rating"]) < 0.1
    assert abs(a["length"] - b["length"]) / b["length"] < 0.1


def test_batched_action_of_wrong_shape_names_both_shapes():
    vec = make_vec("FeedbackRec/News-v0", 4)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 5\); expected \(4, 5\)"):
        vec.step(np.zeros((3, 5), int))


def test_invalid_entry_names_the_sub_env():
    vec = make_vec("FeedbackRec/News-v0", 4)
    vec.reset(seed=0)
    slates = random_slates(np.random.default_rng(0), 4)
    slates[2, 1] = 99
    with pytest.raises(ValueError, match=r"in sub-env 2 has entry 99 at position 1"):
        vec.step(slates)


def test_more_sessions_than_users_is_refused():
    with pytest.raises(ValueError, match=r"num_users=200 is below num_envs=500"):
        make_vec("FeedbackRec/News-v0", 500)


def test_million_item_catalogue():
    vec = make_vec(
        "FeedbackRec/Music-v0", 64, num_items=1_000_000, num_candidates=100, slate_size=10, item_features=None
    )
    obs, _ = vec.reset(seed=0)
    for _ in range(5):
        obs, *_ = vec.step(random_slates(np.random.default_rng(0), 64, 100, 10))
    assert obs["candidates"].max() < 1_000_000
    assert all(len(np.unique(row)) == 100 for row in obs["candidates"])
