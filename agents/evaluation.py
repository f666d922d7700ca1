"""The evaluation protocol shared by every agent.

``eval.episodes`` sessions run side by side in one vector environment reset with a fixed evaluation
seed, so every agent meets the same users in the same world. Each sub-environment is followed for its
first session only. Evaluation measures what the agent's slates *cause*: its environment has the
training settings but no delays and no privacy noise (delays shape the learning signal, not the
outcome), and agents act greedily (``explore=False``) without learning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import ndcg_score, roc_auc_score
from threadpoolctl import threadpool_limits

from agents.base import Agent
from agents.loop import tell_published
from agents.oracle import regret
from envs.signals import SIGNALS, Role, Signal


@dataclass
class _Tally:
    """Running sums over the active sessions of an evaluation."""

    impressions: int = 0
    clicks: int = 0
    purchases: float = 0.0
    regret: list = field(default_factory=list)
    ndcg: list = field(default_factory=list)
    diversity: list = field(default_factory=list)
    ratings: list = field(default_factory=list)
    dwell: list = field(default_factory=list)
    shown: set = field(default_factory=set)
    fresh_shown: int = 0  # shown items younger than fresh_ticks
    fresh_clicks: int = 0  # consumptions of those
    items_shown: int = 0
    honest_errors: list = field(default_factory=list)  # predicted − given stars, honest raters' ratings


FRESH_TICKS = 60
"""Default ``fresh_ticks``: an item is fresh for its first hour in news (one-minute ticks)."""


def evaluate(
    agent: Agent,
    env,
    seed: int,
    max_steps: int = 10_000,
    fresh_ticks: int = FRESH_TICKS,
    start_tick: int = 0,
    regret: bool = True,
) -> dict[str, float]:
    """Run one session in each of ``env.num_envs`` sub-environments; returns the metrics.

    The world is reset with ``seed`` at ``start_tick`` of its clock (``reset(options={"start_tick": ...})``): in
    a world with item churn, an evaluation that starts after the training's last tick meets items the learner
    never saw. Items published at the reset and during the evaluation are handed to
    :meth:`~agents.base.Agent.items_published`. ``regret=False`` skips ``regret_mean`` (None), which costs most
    of an evaluation: each step's best slate by the choice model (a reference's baselines, whose rewards alone
    are used, need none).

    Keys: ``episode_reward_mean``, ``episode_reward_ci95`` (1.96 standard errors), ``ctr``,
    ``rating_mean``, ``dwell_mean`` (seconds for news, fractions for music/video), ``purchase_rate``
    (purchases per impression), ``session_length_mean``, ``regret_mean`` (the expected reward of the step's
    best slate minus the shown slate's, per step, under the simulator's choice model:
    :func:`agents.oracle.regret`, 0 for the oracle), ``ndcg_at_k`` (shown slate against the utility ranking),
    ``intra_list_diversity`` (share of slate pairs in different categories), ``coverage`` (share of the
    catalogue ever shown), ``episodes``, and ``episode_rewards`` (the list of per-session returns, in
    sub-environment order, for paired comparisons of agents on the same seed). With item churn also
    ``cold_start_ctr`` (consumptions per shown item among shown items younger than ``fresh_ticks`` ticks, by
    ``obs["candidate_age"]``) and ``fresh_share`` (the share of shown items that young). Metrics that do not apply
    are None (the churn metrics in a static catalogue). ``rating_rmse_honest``: the root mean squared error, in
    stars, of the agent's predicted rating (``predict(obs, slates)["rating"]``, made before the step) against the
    rating each honest (not spam) rater gives a shown item during the evaluation — their true rating, since the
    evaluation's feedback is not privatised; the learner never trains on these sessions, so the error is held out;
    None for an agent that predicts no rating, or when no honest rating arrived.
    """
    if env.num_envs < 1:
        raise ValueError(f"evaluation needs at least 1 episode, got {env.num_envs}")
    if isinstance(fresh_ticks, bool) or not isinstance(fresh_ticks, int) or fresh_ticks < 1:
        raise ValueError(f"fresh_ticks={fresh_ticks!r}; expected an integer >= 1 (ticks of the world clock)")
    with threadpool_limits(limits=1, user_api="blas"):  # as in agents.loop.run_online
        return _evaluate(agent, env, seed, max_steps, fresh_ticks, start_tick, regret)


def _evaluate(
    agent: Agent, env, seed: int, max_steps: int, fresh_ticks: int, start_tick: int, with_regret: bool
) -> dict[str, float]:
    """:func:`evaluate`'s loop."""
    base = env.unwrapped
    obs, _ = env.reset(seed=seed, options={"start_tick": start_tick} if start_tick else None)
    agent.attach(env)
    tell_published(agent, env)
    batch = env.num_envs
    active = np.ones(batch, bool)
    returns, lengths = np.zeros(batch), np.zeros(batch, np.int64)
    tally = _Tally()
    for _ in range(max_steps):
        problem = base.sim.choice_problem() if with_regret else None
        utility = problem.utility if with_regret else base.sim.candidate_utility()
        slates = agent.check_slates(np.asarray(agent.act(obs, explore=False)), batch)
        if with_regret:
            tally.regret.extend(regret(problem, slates)[active])
        candidates, ages, before = obs["candidates"], obs["candidate_age"], obs
        obs, reward, terminated, truncated, info = env.step(slates)
        tell_published(agent, env)
        rows = np.flatnonzero(active)
        _tally_honest_ratings(tally, agent, before, slates, rows, base.delivered.arrived, base.sim.population.spam)
        returns[rows] += reward[rows]
        lengths[rows] += 1
        _tally_step(tally, rows, slates, candidates, utility, info, base.delivered, base.catalog.categories)
        _tally_fresh(tally, rows, slates, ages, info["choice"], fresh_ticks)
        active &= ~(terminated | truncated)
        if not active.any():
            break
    metrics = _summarise(returns, lengths, tally, base.catalog.num_items)
    churns = base.sim.pool is not None
    metrics["cold_start_ctr"] = tally.fresh_clicks / tally.fresh_shown if churns and tally.fresh_shown else None
    metrics["fresh_share"] = tally.fresh_shown / max(tally.items_shown, 1) if churns else None
    errors = np.asarray(tally.honest_errors)
    metrics["rating_rmse_honest"] = float(np.sqrt(np.mean(errors**2))) if len(errors) else None
    return metrics


def _tally_honest_ratings(tally, agent, obs, slates, rows, records, spam) -> None:
    """Add the errors of ``agent``'s predicted stars for the items of ``slates`` that honest raters (not
    ``spam`` ``(U,)``) of the active ``rows`` rated in this step's ``records`` (no delays in an evaluation: a
    rating arrives in the step its item is shown)."""
    if not callable(getattr(agent, "predict", None)):
        return
    rated = records[(records["kind"] == Signal.RATING) & np.isin(records["env_index"], rows)]
    rated = rated[~spam[rated["user_id"]]]
    if not len(rated):
        return
    predicted = agent.predict(obs, slates).get("rating")
    if predicted is not None:
        given = rated["value"].astype(np.float64)
        tally.honest_errors.extend(predicted[rated["env_index"], rated["position"]] - given)


def spam_detection_auc(scores: np.ndarray | None, spam: np.ndarray) -> float | None:
    """ROC AUC of a learner's spam ``scores`` ``(U,)`` (NaN for users it has no ratings of) against the simulator's
    truth ``spam`` ``(U,)`` bool, over the users it scored; None when it keeps no scores or those users are not of
    both kinds."""
    if scores is None:
        return None
    scored = ~np.isnan(scores)
    truth = np.asarray(spam, bool)[scored]
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, scores[scored]))


def _tally_fresh(tally, rows, slates, ages, choice, fresh_ticks: int) -> None:
    """Count the shown items younger than ``fresh_ticks`` (ages ``(B, M)`` before the step) and their consumptions
    (``choice`` ``(B,)`` the consumed slot, -1 for none)."""
    fresh = np.take_along_axis(ages[rows], slates[rows], axis=1) < fresh_ticks  # (R, k)
    chosen = choice[rows]
    tally.items_shown += fresh.size
    tally.fresh_shown += int(fresh.sum())
    clicked = chosen >= 0
    tally.fresh_clicks += int(fresh[np.flatnonzero(clicked), chosen[clicked]].sum())


def _tally_step(tally, rows, slates, candidates, utility, info, delivered, categories) -> None:
    k = slates.shape[1]
    slates, utility = slates[rows], utility[rows]
    shown_items = np.take_along_axis(candidates[rows], slates, axis=1)
    tally.impressions += len(rows)
    tally.clicks += int((info["choice"][rows] >= 0).sum())
    relevance = utility - utility.min(axis=1, keepdims=True)
    placed = np.zeros_like(utility)
    np.put_along_axis(placed, slates, np.arange(k, 0, -1, dtype=placed.dtype), axis=1)
    if relevance.shape[1] > 1:
        tally.ndcg.append(ndcg_score(relevance, placed, k=k) * len(rows))
    cats = categories[shown_items]
    pairs = k * (k - 1) / 2
    if pairs:
        differ = (cats[:, :, None] != cats[:, None, :]).sum(axis=(1, 2)) / 2
        tally.diversity.extend(differ / pairs)
    tally.shown.update(shown_items.ravel().tolist())
    feedback = delivered.arrived
    feedback = feedback[np.isin(feedback["env_index"], rows)]
    kinds = feedback["kind"]
    tally.ratings.extend(feedback["value"][kinds == Signal.RATING])
    tally.dwell.extend(feedback["value"][np.isin(kinds, SIGNALS.with_role(Role.DEPTH))])
    tally.purchases += float(feedback["value"][kinds == Signal.PURCHASE].sum())


def _summarise(returns, lengths, tally: _Tally, num_items: int) -> dict[str, float]:
    n = len(returns)
    ci = 1.96 * returns.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
    impressions = max(tally.impressions, 1)
    return {
        "episode_reward_mean": float(returns.mean()),
        "episode_reward_ci95": float(ci),
        "ctr": tally.clicks / impressions,
        "rating_mean": _mean_or_none(tally.ratings),
        "dwell_mean": _mean_or_none(tally.dwell),
        "purchase_rate": tally.purchases / impressions,
        "session_length_mean": float(lengths.mean()),
        "regret_mean": _mean_or_none(tally.regret),
        "ndcg_at_k": float(np.sum(tally.ndcg) / impressions) if tally.ndcg else None,
        "intra_list_diversity": _mean_or_none(tally.diversity),
        "coverage": len(tally.shown) / num_items,
        "episodes": n,
        "episode_rewards": returns.tolist(),
    }


def normalized_score(agent: float, random: float, oracle: float) -> float:
    """``(agent - random) / (oracle - random)``: 0 is random, 1 is the oracle."""
    if not oracle > random:
        raise ValueError(f"oracle reward {oracle} must exceed random reward {random} to normalise")
    return (agent - random) / (oracle - random)


def _mean_or_none(values) -> float | None:
    return float(np.mean(values)) if len(values) else None
