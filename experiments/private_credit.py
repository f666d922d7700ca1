"""How each estimate of a private report weighs the reward's signals (prints figures; not a test).

    python experiments/private_credit.py                      # News, ε = 4 and 1
    python experiments/private_credit.py --env Ecommerce --epsilon 2

Shown items' clean feedback comes from the domain's env under random slates (``--steps`` user-steps, privacy off);
each item's reports are then drawn by the world's own mechanisms (:mod:`envs.privacy`) and re-read three ways —
as they come (``naive``), by the unbiased estimators and by the posterior means under the reports' population
priors (:class:`agents.private_feedback.ReportMechanism`). For every rewarded signal it prints the *effective
weight* ``w · slope``, the slope being ``Cov(estimate, clean) / Var(clean)`` over shown items (its reward weight
``w`` is what a correct credit gives it), and the *noise* ``w² Var(estimate − slope · clean)`` per shown item. A
learner that ranks by mean credit sees ``Σ_s w_s · slope_s · E[clean_s | item]``: its ranking is right where the
effective weights keep the reward weights' proportions, and its error per report is the summed noise.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the environments)
from agents.private_feedback import ReportMechanism, ReportStatistics
from envs.draws import draw_key
from envs.feedback import FEEDBACK_DTYPE
from envs.privacy import categorical_response, laplace_report, randomised_response, report_epsilon
from envs.signals import SIGNALS, Signal

ESTIMATES = ("naive", "unbiased", "posterior")


def clean_slots(domain: str, steps: int, seed: int) -> tuple[np.ndarray, tuple[int, ...], dict[int, float], object]:
    """Clean values ``(n, S + 1)`` of every shown item's implicit signals and rating (0 where absent), the signal
    kinds, the reward weights by kind and the simulator, from ``steps`` random slates (privacy off)."""
    env = gym.make(f"FeedbackRec/{domain}-v0", num_users=300, rating_propensity=0.3)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sim = env.unwrapped.sim
    kinds = (*(int(s) for s in sim.domain.implicit_signals), int(Signal.RATING))
    shown, values = [], {}  # impression ids in order; (impression, position, kind) -> value, late records too
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        shown.append(info["impression_id"])
        fb = info["feedback"]
        for record in zip(fb["impression_id"], fb["position"], fb["kind"], fb["value"], strict=True):
            values[tuple(int(x) for x in record[:3])] = float(record[3])
        if terminated or truncated:
            env.reset()
    slate = env.unwrapped.config.slate_size
    clean = np.array(
        [[values.get((i, p, k), 0.0) for k in kinds] for i in shown for p in range(slate)], dtype=np.float64
    )
    weights = {kind: float(sim.reward_weight[kind]) for kind in kinds if sim.reward_weight[kind] != 0}
    return clean, kinds, weights, sim


def reports(clean: np.ndarray, kinds: tuple[int, ...], mechanism: ReportMechanism, seed: int) -> np.ndarray:
    """The reports ``(n, S + 1)`` of ``clean`` values by the world's mechanisms at ``mechanism.epsilon``."""
    key, eps = draw_key(np.random.default_rng(seed)), mechanism.epsilon
    stars, out, i = np.asarray(mechanism.star_values), np.empty_like(clean), 0
    for (row, column), value in np.ndenumerate(clean):
        kind = kinds[column]
        if kind == Signal.RATING:
            category, i = categorical_response(
                int(mechanism.category(np.array([value]))[0]), len(stars) + 1, eps, key, i
            )
            out[row, column] = stars[category - 1] if category else 0.0
        elif SIGNALS.binary[kind]:
            out[row, column], i = randomised_response(float(value > 0.5), eps, key, i)
        else:
            out[row, column], i = laplace_report(value, SIGNALS.low[kind], SIGNALS.high[kind], eps, key, i)
    return out


def estimates(reported: np.ndarray, kinds: tuple[int, ...], mechanism: ReportMechanism) -> dict[str, np.ndarray]:
    """Each of :data:`ESTIMATES` of the ``reported`` values ``(n, S + 1)``, the posterior under the priors of
    these very reports."""
    records = np.zeros(reported.size, FEEDBACK_DTYPE)
    records["kind"], records["value"] = np.tile(kinds, len(reported)), reported.ravel()
    statistics = ReportStatistics(mechanism.categories)
    statistics.observe(mechanism, records)
    kind = np.asarray(kinds)
    return {
        "naive": reported,
        "unbiased": mechanism.unbiased_values(reported, kind),
        "posterior": mechanism.posterior_values(reported, kind, statistics),
    }


def effective_weights(
    clean: np.ndarray, estimate: np.ndarray, kinds: tuple[int, ...], weights: dict[int, float]
) -> dict[int, tuple[float, float]]:
    """For each rewarded kind, ``(w · slope, w² · noise)`` of ``estimate`` ``(n, S + 1)`` against ``clean`` values
    (module docstring); the clean value of a kind with no record is its neutral value."""
    out = {}
    for j, kind in enumerate(kinds):
        if kind in weights:
            neutral, w = SIGNALS.neutral[kind], weights[kind]
            truth = np.where(clean[:, j] != 0, clean[:, j] - neutral, 0.0)
            centred = estimate[:, j] - neutral
            slope = np.cov(centred, truth)[0, 1] / truth.var()
            out[kind] = w * slope, w * w * np.var(centred - slope * truth)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="News", help="domain, e.g. News, Ecommerce, Music, Video")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[4.0, 1.0], help="privacy_epsilon values")
    parser.add_argument("--steps", type=int, default=6000, help="random slates shown")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clean, kinds, weights, sim = clean_slots(args.env, args.steps, args.seed)
    print(f"{args.env}: {len(clean):,} shown items; share with a record: ", end="")
    print(", ".join(f"{SIGNALS.name(k)} {(clean[:, j] != 0).mean():.4f}" for j, k in enumerate(kinds)))
    for epsilon in args.epsilon:
        budget = report_epsilon(epsilon, len(kinds))
        mechanism = ReportMechanism(budget, kinds[:-1], tuple(sim.rating_scale.stars().tolist()))
        print(f"ε = {epsilon:g} (ε_r = {budget:.3f}): effective weight (reward weight) / noise per shown item")
        for name, estimate in estimates(reports(clean, kinds, mechanism, args.seed), kinds, mechanism).items():
            cells = [
                f"{SIGNALS.name(kind)} {weight:6.3f} ({weights[kind]:g}) / {noise:6.3f}"
                for kind, (weight, noise) in effective_weights(clean, estimate, kinds, weights).items()
            ]
            print(f"  {name:<9}  " + "   ".join(cells))


if __name__ == "__main__":
    main()
