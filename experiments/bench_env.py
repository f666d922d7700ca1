"""Environment throughput benchmark (prints figures; not a test).

    python experiments/bench_env.py            # single env, every domain, two sizes, vs a numpy loop
    python experiments/bench_env.py --vector   # batched env: users x catalogue x slate, vs a numpy ceiling;
                                               # then item churn on next to off (goal: >= 0.8 of the static rate)

Figures are medians of 3 repeats; random slates are drawn ahead of time so only the env is timed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import gymnasium as gym
import numpy as np

import envs

SIZES = ((20, 5), (100, 10))
REPEATS = 3


def random_slates(rng: np.random.Generator, batch: int, m: int, k: int, count: int = 64) -> list[np.ndarray]:
    """``count`` batches of ``k`` distinct candidates out of ``m``, shaped ``(batch, k)``: contiguous arrays,
    as an agent hands them over (not strided views into an ``(batch, m)`` ranking)."""
    return [np.ascontiguousarray(np.argsort(rng.random((batch, m)), axis=1)[:, :k]) for _ in range(count)]


def single_env_rate(env_id: str, m: int, k: int, steps: int) -> float:
    """Steps per second of ``gym.make(env_id)`` with random slates, resets included."""
    env = gym.make(env_id, num_candidates=m, slate_size=k)
    slates = [s[0] for s in random_slates(np.random.default_rng(0), 1, m, k)]
    env.reset(seed=0)
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(slates[i % len(slates)])
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_single(steps: int) -> None:
    print(f"single env (gym.make, meta features), {steps} steps x {REPEATS}, median")
    print(f"{'env':<26}{'M':>5}{'k':>4}{'steps/s':>12}{'us/step':>10}{'numpy ref':>12}{'ratio':>7}")
    for env_id in sorted(s for s in gym.registry if s.startswith("FeedbackRec/")):
        single_env_rate(env_id, 20, 5, 200)  # compile and warm up
        for m, k in SIZES:
            rate = single_env_rate(env_id, m, k, steps)
            ref = numpy_reference_rate(1, 2_000, m, k, steps)  # measured next to it: the machine's pace now
            print(f"{env_id:<26}{m:>5}{k:>4}{rate:>12,.0f}{1e6 / rate:>10.1f}{ref:>12,.0f}{rate / ref:>7.2f}")


CHURN = {"publish_rate": 1.0, "freshness_half_life": 2160.0}
"""Item churn for the on/off comparison: a new item a tick (a ring of 10,000 slots lasts ~10,000 ticks)."""


def vector_rate(num_envs: int, num_items: int, m: int, k: int, features, steps: int, **churn) -> float:
    """User-steps per second of the batched news env (``churn``: item churn settings, none for a static one)."""
    env = gym.make_vec(
        "FeedbackRec/News-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        num_items=num_items,
        num_candidates=m,
        slate_size=k,
        num_users=max(10 * num_envs, 1000),
        item_features=features,
        **churn,
    )
    slates = random_slates(np.random.default_rng(0), num_envs, m, k)
    env.reset(seed=0)
    for i in range(20):
        env.step(slates[i % len(slates)])
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(steps):
            env.step(slates[i % len(slates)])
        rates.append(steps * num_envs / (time.perf_counter() - start))
    return statistics.median(rates)


def numpy_reference_rate(num_envs: int, num_items: int, m: int, k: int, steps: int) -> float:
    """The machine's ceiling: multinomial-logit choice + interest update over a batch in plain numpy
    (candidate draw, utility of the slate, softmax sampling with a no-click option, drift), no feedback."""
    rng = np.random.default_rng(0)
    topics = 10
    item_topic = rng.integers(topics, size=num_items)
    interests = rng.normal(size=(num_envs, topics)).astype(np.float32)
    rows = np.arange(num_envs)
    slates = random_slates(rng, num_envs, m, k)
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(steps):
            candidates = rng.integers(num_items, size=(num_envs, m))
            items = np.take_along_axis(candidates, slates[i % len(slates)], axis=1)
            utility = interests[rows[:, None], item_topic[items]]
            logits = np.concatenate([utility, np.zeros((num_envs, 1), np.float32)], axis=1)
            p = np.exp(logits)
            cdf = np.cumsum(p, axis=1)
            choice = (rng.random((num_envs, 1)) * cdf[:, -1:] > cdf).sum(axis=1)
            clicked = np.flatnonzero(choice < k)
            rows_topics = (clicked, item_topic[items[clicked, choice[clicked]]])
            interests[rows_topics] = np.minimum(interests[rows_topics] + 0.01, 4.0)
        rates.append(steps * num_envs / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_vector(steps: int) -> None:
    print(f"vector env (make_vec vector_entry_point, news, delays and all signals on), median of {REPEATS}")
    print(f"{'users':>6}{'items':>10}{'M':>5}{'k':>4}{'features':>9}{'user-steps/s':>15}{'numpy ref':>13}{'ratio':>7}")
    for num_items in (10_000, 100_000, 1_000_000):
        for m, k in SIZES:
            for num_envs in (1, 64, 1024):
                n = max(steps // num_envs, 20)
                rate = vector_rate(num_envs, num_items, m, k, None, n)
                ref = numpy_reference_rate(num_envs, num_items, m, k, n)
                print(
                    f"{num_envs:>6}{num_items:>10,}{m:>5}{k:>4}{'none':>9}{rate:>15,.0f}{ref:>13,.0f}{rate / ref:>7.2f}"
                )
    rate = vector_rate(1024, 10_000, 100, 10, "meta", max(steps // 1024, 20))
    print(f"{1024:>6}{10_000:>10,}{100:>5}{10:>4}{'meta':>9}{rate:>15,.0f}")
    bench_churn(steps)
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=1024, vectorization_mode="vector_entry_point", num_users=10_000)
    sim = env.unwrapped.sim
    state_bytes = sum(
        a.nbytes
        for a in (
            sim.user,
            sim.session,
            sim.steps,
            sim.interests,
            sim.fatigue,
            sim.mood,
            sim.budget,
            sim.history,
            sim.candidates,
            sim.progression,
            sim.feedback_obs,
        )
    )
    print(f"session state: {state_bytes / 1024:,.0f} bytes per user (1,024 users, M=20)")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


def bench_churn(steps: int) -> None:
    """Item churn on next to off, measured alternately (the machine's pace drifts between runs)."""
    print(f"item churn ({CHURN}) vs a static catalogue, 1,024 users, 10,000 items, M=100, k=10, no features")
    print(f"{'':>6}{'static':>15}{'churn':>15}{'ratio':>7}  (goal >= 0.8)")
    n = max(steps // 1024, 20)
    for _ in range(REPEATS):
        static = vector_rate(1024, 10_000, 100, 10, None, n)
        churned = vector_rate(1024, 10_000, 100, 10, None, n, **CHURN)
        print(f"{'':>6}{static:>15,.0f}{churned:>15,.0f}{churned / static:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vector", action="store_true", help="benchmark the batched env")
    parser.add_argument("--steps", type=int, default=20_000, help="steps (single) or user-steps (vector) per repeat")
    args = parser.parse_args()
    print(f"FeedbackRec {envs.__name__} benchmark")
    if args.vector:
        bench_vector(max(args.steps, 200_000))
    else:
        bench_single(args.steps)


if __name__ == "__main__":
    main()
