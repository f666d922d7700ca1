"""Soak test of the batched environment (prints figures; not part of the test suite).

    python experiments/soak.py                          # 1,000,000 user-steps in each of the four domains
    python experiments/soak.py --steps 200000 --domains news

Runs the native vector env (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``) with
random slates (some with repeated items), geometric delays of random means on every signal, privacy
noise, users returning to the world (so held feedback is released at their next session), natural
session ends and time-limit truncation. Along the way it checks:

- conservation per signal kind: records generated = records delivered + records pending, where
  "delivered" is counted independently from what the env hands out (``env.delivered``: arrived and released
  records) and must also equal the channel's own counter;
- no NaN or inf in observations (``final_obs`` included), rewards, utilities or feedback values, and
  no record delivered before it was shown;
- bounded memory: resident memory may grow by at most ``--max-growth-mib`` after the first tenth of
  the run (warm-up: compilation, pools reaching their working size); the peak is reported.

Exits with status 1 naming the first violated check.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Mapping

import gymnasium as gym
import numpy as np

import envs
from envs.signals import SIGNALS, Signal

DOMAINS = tuple(d.title for d in envs.DOMAINS.values() if d.world is None)  # the generated ones
CHECK_EVERY = 64  # vector steps between conservation and memory checks


class SoakFailure(AssertionError):
    """A soak check failed."""


def rss_mib() -> float:
    """Current resident memory of this process in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_delays(rng: np.random.Generator, max_delay: int) -> dict[str, str]:
    """A geometric delay of random mean (0.5 to ``max_delay / 2`` steps) for every signal kind."""
    return {s.name.lower(): f"geometric:{rng.uniform(0.5, max_delay / 2):.2f}" for s in Signal}


def slate_pool(rng: np.random.Generator, num_envs: int, m: int, k: int, count: int = 64) -> list[np.ndarray]:
    """``count`` batches of slates ``(num_envs, k)``: distinct candidates, except every fourth batch,
    which is drawn with replacement so repeated slots (masked by the env) occur too."""
    return [
        rng.integers(m, size=(num_envs, k)) if i % 4 == 3 else np.argsort(rng.random((num_envs, m)), axis=1)[:, :k]
        for i in range(count)
    ]


def require(ok: bool, message: str) -> None:
    if not ok:
        raise SoakFailure(message)


def require_finite(where: str, arrays: Mapping[str, np.ndarray] | np.ndarray) -> None:
    """Every float entry of ``arrays`` (one array or a name → array mapping) is finite."""
    items = arrays.items() if isinstance(arrays, Mapping) else [("", arrays)]
    for name, array in items:
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0].tolist()
            raise SoakFailure(f"{where}{'[' + name + ']' if name else ''} is not finite at index {bad}")


def tally(delivered: np.ndarray, records: np.ndarray) -> None:
    """Check feedback ``records`` and add them to ``delivered`` ``(SIGNALS.count,)`` per kind."""
    require_finite("feedback value", records["value"])
    require(bool((records["step_arrived"] >= records["step_shown"]).all()), "a record arrived before it was shown")
    delivered += np.bincount(records["kind"], minlength=SIGNALS.count)


def check_conservation(channel, delivered: np.ndarray, where: str) -> None:
    """generated = delivered + pending for every kind, and the channel agrees with our own count."""
    pending = np.bincount(channel.pending_records()["kind"], minlength=SIGNALS.count)
    if not np.array_equal(channel.generated, delivered + pending):
        kind = int(np.flatnonzero(channel.generated != delivered + pending)[0])
        raise SoakFailure(
            f"{where}: conservation broken for {Signal(kind).name.lower()}: generated {channel.generated[kind]} "
            f"!= delivered {delivered[kind]} + pending {pending[kind]}"
        )
    require(
        np.array_equal(channel.delivered, delivered),
        f"{where}: the channel counted {channel.delivered.tolist()} delivered, the env handed out {delivered.tolist()}",
    )


def soak(domain: str, args: argparse.Namespace) -> dict:
    """Run ``args.steps`` user-steps of one domain with every check; returns its figures."""
    rng = np.random.default_rng([args.seed, DOMAINS.index(domain)])
    env = gym.make_vec(
        f"FeedbackRec/{domain}-v0",
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        num_items=args.num_items,
        num_candidates=args.num_candidates,
        slate_size=args.slate_size,
        num_users=2 * args.num_envs,
        delays=random_delays(rng, args.max_delay),
        max_delay=args.max_delay,
        privacy_epsilon=args.privacy_epsilon,
        max_episode_steps=args.max_episode_steps,
    )
    channel = env.unwrapped.sim.channel
    slates = slate_pool(rng, args.num_envs, args.num_candidates, args.slate_size)
    delivered = np.zeros(SIGNALS.count, np.int64)
    obs, info = env.reset(seed=args.seed)
    require_finite("reset observation", obs)
    tally(delivered, env.unwrapped.delivered.released)
    calls = -(-args.steps // args.num_envs)
    warm_call, warm_rss, max_pending, terminated_total, truncated_total = calls // 10, rss_mib(), 0, 0, 0
    start = time.perf_counter()
    for call in range(1, calls + 1):
        obs, reward, terminated, truncated, info = env.step(slates[call % len(slates)])
        where = f"{domain}, step {call}"
        require_finite(f"{where}: observation", obs)
        require_finite(f"{where}: reward", reward)
        require_finite(f"{where}: utility", info["utility"])
        arrived, released = env.unwrapped.delivered
        tally(delivered, arrived)
        tally(delivered, released)
        if "final_obs" in info:
            for row in info["final_obs"][info["_final_obs"]]:
                require_finite(f"{where}: final observation", row)
        terminated_total += int(terminated.sum())
        truncated_total += int(truncated.sum())
        max_pending = max(max_pending, channel.pending)
        if call % CHECK_EVERY == 0 or call == calls:
            check_conservation(channel, delivered, where)
        if call == warm_call:
            warm_rss = rss_mib()
    seconds = time.perf_counter() - start
    end_rss = rss_mib()
    require(
        end_rss - warm_rss <= args.max_growth_mib,
        f"{domain}: resident memory grew {end_rss - warm_rss:.1f} MiB after warm-up (limit {args.max_growth_mib} MiB)",
    )
    return {
        "domain": domain,
        "user_steps": calls * args.num_envs,
        "seconds": seconds,
        "sessions_terminated": terminated_total,
        "sessions_truncated": truncated_total,
        "generated": channel.generated.copy(),
        "delivered": delivered,
        "pending": np.bincount(channel.pending_records()["kind"], minlength=SIGNALS.count),
        "max_pending": max_pending,
        "warm_rss": warm_rss,
        "end_rss": end_rss,
    }


def print_figures(result: dict) -> None:
    r = result
    print(
        f"\n{r['domain']}: {r['user_steps']:,} user-steps in {r['seconds']:.1f} s "
        f"({r['user_steps'] / r['seconds']:,.0f} user-steps/s incl. checks); sessions ended: "
        f"{r['sessions_terminated']:,} terminated, {r['sessions_truncated']:,} truncated"
    )
    print(f"  {'kind':<16}{'generated':>12}{'delivered':>12}{'pending':>10}  ok")
    for kind in np.flatnonzero(r["generated"]):
        g, d, p = r["generated"][kind], r["delivered"][kind], r["pending"][kind]
        print(f"  {Signal(kind).name.lower():<16}{g:>12,}{d:>12,}{p:>10,}  {'yes' if g == d + p else 'NO'}")
    print(
        f"  max pending {r['max_pending']:,} records; resident memory {r['warm_rss']:.1f} MiB after warm-up, "
        f"{r['end_rss']:.1f} MiB at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000, help="user-steps per domain")
    parser.add_argument("--domains", default=",".join(d.lower() for d in DOMAINS), help="comma-separated")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--num-items", type=int, default=5_000)
    parser.add_argument("--num-candidates", type=int, default=50)
    parser.add_argument("--slate-size", type=int, default=10)
    parser.add_argument("--max-delay", type=int, default=60, help="cap of the geometric delays, in steps")
    parser.add_argument("--max-episode-steps", type=int, default=25, help="time limit of a session")
    parser.add_argument("--privacy-epsilon", type=float, default=1.0, help="local DP noise on values")
    parser.add_argument("--max-growth-mib", type=float, default=64.0, help="allowed RSS growth after warm-up")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = {d.lower(): d for d in DOMAINS}
    chosen = [d.strip().lower() for d in args.domains.split(",")]
    unknown = [d for d in chosen if d not in names]
    if unknown:
        parser.error(f"--domains {unknown}: expected some of {sorted(names)}")
    print(
        f"soak: {args.steps:,} user-steps per domain, {args.num_envs} sessions at once over {2 * args.num_envs} "
        f"users, {args.num_candidates} candidates, slate {args.slate_size}, {args.num_items:,} items, geometric "
        f"delays (max {args.max_delay}), privacy epsilon {args.privacy_epsilon}, time limit "
        f"{args.max_episode_steps}, seed {args.seed}"
    )
    started = time.perf_counter()
    try:
        for domain in chosen:
            print_figures(soak(names[domain], args))
    except SoakFailure as failure:
        print(f"\nSOAK FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print(
        f"\nall checks passed in {time.perf_counter() - started:.1f} s; peak resident memory {peak_rss_mib():.1f} MiB"
    )


if __name__ == "__main__":
    main()
