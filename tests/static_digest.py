"""A digest of a static world's run: what the world did, bit for bit, over the observation keys, rewards, ends,
infos and feedback records that existed before item churn (``tests/test_churn.py`` compares it with digests recorded
on the code before churn was added)."""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np

from envs import as_records

KEYS = ("candidates", "history", "feedback", "user_id", "candidate_features")
"""The observation keys a static world had before churn (``candidate_age`` came with it)."""
INFO = ("utility", "masked_positions", "impression_id", "choice")
RUNS = {
    "news-single": ("FeedbackRec/News-v0", {}, 1),
    "ecommerce-single-none": ("FeedbackRec/Ecommerce-v0", {"item_features": None}, 1),
    "music-vector": ("FeedbackRec/Music-v0", {}, 16),
    "video-vector-private": ("FeedbackRec/Video-v0", {"privacy_epsilon": 1.0, "choice_model": "cascade"}, 16),
    "news-vector-parallel": ("FeedbackRec/News-v0", {"item_features": None}, 300),
    "movielens-vector": ("FeedbackRec/MovieLens-v0", {"num_items": 300}, 8),
}
"""name → (id, keywords, sessions): the recorded runs (one session: the single env)."""


def static_digest(env_id: str, kwargs: dict, num_envs: int, steps: int = 150) -> str:
    """SHA-256 of ``steps`` random-slate steps of ``env_id`` (resets included), seed 3."""
    settings = {"num_items": 400, "num_users": max(400, 2 * num_envs), **kwargs}
    if num_envs == 1:
        env = gym.make(env_id, **settings)
        space = env.action_space
    else:
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **settings)
        space = env.single_action_space
    digest = hashlib.sha256()
    rng = np.random.default_rng(5)
    m, k = int(space.nvec[0]), len(space.nvec)

    def add(*arrays) -> None:
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())

    obs, info = env.reset(seed=3)
    add(*(obs[key] for key in KEYS if key in obs))
    for _ in range(steps):
        slates = np.argsort(rng.random((num_envs, m)), axis=1)[:, :k]
        action = slates[0] if num_envs == 1 else slates
        add(env.unwrapped.candidate_utility())
        obs, reward, terminated, truncated, info = env.step(action)
        add(*(obs[key] for key in KEYS if key in obs), reward, terminated, truncated)
        add(*(info[key] for key in INFO))
        if num_envs == 1:
            add(as_records(info["feedback"]))
            if terminated or truncated:
                obs, info = env.reset()
                add(*(obs[key] for key in KEYS if key in obs), as_records(info["feedback"]))
        else:
            add(*env.unwrapped.delivered)
    add(env.unwrapped.sim.channel.pending_records())
    return digest.hexdigest()


if __name__ == "__main__":
    import envs  # noqa: F401

    for name, (env_id, kwargs, num_envs) in RUNS.items():
        print(f'    "{name}": "{static_digest(env_id, kwargs, num_envs)}",')
