"""Benchmarks of the BERT recommender's pieces; prints figures, asserts nothing.

    python experiments/bench_models.py                    # real MiniLM, 10,000-item cache reload
    python experiments/bench_models.py --encoder tiny     # the random test BERT, fast

Prints: item-text encoding throughput (items/s), the time ``catalog_embeddings`` takes to reload
10,000 cached embeddings (target < 1 s), and ``BertAgent.update()`` time per minibatch of 256
impressions in ``head`` and ``lora`` mode (target for ``head``: <= 20 ms on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the environments)
from agents.base import Task, Transition
from agents.bert import BertAgent
from envs.catalog import Catalog
from envs.domains.news import NEWS
from models.encoder import TextEncoder, catalog_embeddings


def encoding_throughput(encoder: str, items: int) -> float:
    """Items per second encoding ``items`` news headlines (no cache)."""
    model = TextEncoder.load(encoder)
    texts = list(Catalog.generate(NEWS, items, seed=1).texts)
    start = time.perf_counter()
    model.encode(texts, progress=False)
    return items / (time.perf_counter() - start)


def cached_reload_seconds(encoder: str, items: int, cache_dir: str | None) -> tuple[float, float]:
    """Seconds of the first ``catalog_embeddings`` call (encodes what is not cached yet) and of the
    second (everything cached)."""
    catalog = Catalog.generate(NEWS, items, seed=2)
    start = time.perf_counter()
    catalog_embeddings(catalog, encoder, cache_dir)
    first = time.perf_counter() - start
    start = time.perf_counter()
    catalog_embeddings(catalog, encoder, cache_dir)
    return first, time.perf_counter() - start


def update_milliseconds(
    encoder: str, finetune: str, cache_dir: str | None, updates: int, fill_steps: int, rounds: int = 5
) -> np.ndarray:
    """Milliseconds per ``update()`` of a minibatch of 256 impressions in each of ``rounds`` rounds of
    ``updates`` updates, after ``fill_steps`` steps of 16 news sessions filled the replay."""
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=16, vectorization_mode="vector_entry_point")
    agent = BertAgent(
        Task.of(env), seed=0, encoder=encoder, finetune=finetune, cache_dir=cache_dir, batch_size=256, cpu_threads=None
    )
    obs, _ = env.reset(seed=0)
    agent.attach(env)
    for _ in range(fill_steps):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.observe(Transition(obs, action, reward, terminated, truncated, info, next_obs))
        obs = next_obs
    agent.update()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(updates):
            agent.update()
        times.append(1000 * (time.perf_counter() - start) / updates)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="minilm", help="minilm, tiny or a local model directory")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the user cache dir)")
    parser.add_argument("--encode-items", type=int, default=1000)
    parser.add_argument("--reload-items", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=20, help="head-mode updates per timed round (lora: a tenth)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the agent's default is 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, cuda: {torch.cuda.is_available()}")
    rate = encoding_throughput(args.encoder, args.encode_items)
    print(f"encoding throughput ({args.encoder}, {args.encode_items} items): {rate:,.0f} items/s")
    first, second = cached_reload_seconds(args.encoder, args.reload_items, args.cache_dir)
    print(f"catalog_embeddings of {args.reload_items:,} items: first call {first:.2f} s (encodes what is missing)")
    print(f"catalog_embeddings of {args.reload_items:,} items: cached reload {second:.3f} s (target < 1 s)")
    fill = int(np.ceil(2 * 256 / 16)) + 12
    for mode, updates, rounds in (("head", args.updates, 5), ("lora", max(args.updates // 10, 1), 1)):
        times = update_milliseconds(args.encoder, mode, args.cache_dir, updates, fill, rounds)
        target = " (target <= 20 ms)" if mode == "head" else ""
        print(
            f"update() {mode} mode: {np.median(times):.1f} ms per minibatch of 256 impressions "
            f"(median of {rounds} rounds of {updates}; best {times.min():.1f} ms){target}"
        )


if __name__ == "__main__":
    main()
