"""The compiled per-step user dynamics, one kernel per domain, looping over the ``B`` sessions.

For each session: look up the slate's items, mask repeated slots, compute the hidden utility of each
shown item, let the choice model pick a slot (or none; sometimes a misclick), turn a consumption into the
domain's implicit signals and, rarely, a rating (and text), evolve the user (fatigue, interest drift,
mood, time budget) and draw the next candidates. Randomness comes from a block of uniforms, a fixed
slice per session (see :mod:`envs.draws`).
"""

from __future__ import annotations

from typing import NamedTuple

from numba import njit, prange

from envs.choice import CASCADE, choose_cascade, choose_mnl
from envs.draws import bernoulli, normal, sigmoid, uniform
from envs.feedback import PHRASINGS
from envs.responses import respond
from envs.signals import Signal

UNIFORMS_PER_SESSION = 20  # plus one per slot for the cascade model
RATING = int(Signal.RATING)
SATISFACTION_SLOPE = 1.5  # satisfaction = sigmoid(SLOPE · (utility − no-click utility) + NOISE · N(0, 1))
SATISFACTION_NOISE = 0.3


class Dynamics(NamedTuple):
    """Scalar parameters of the kernel (from :class:`envs.config.SimConfig`)."""

    choice_model: int
    position_bias: float
    misclick_rate: float
    rating_noise: float
    quality_weight: float
    fatigue_weight: float
    fatigue_decay: float
    drift_rate: float
    max_episode_steps: int  # 0: never truncate
    text_kind: int  # -1: the domain writes no text
    response: int  # a value of envs.responses.RESPONSES


@njit(cache=True, inline="always")
def item_utility(interests, fatigue, item, topic, second, weight, quality, p):
    """Hidden utility of one item for one user: topic affinity + quality − topic fatigue."""
    w = weight[item]
    affinity = (1 - w) * interests[topic[item]] + w * interests[second[item]]
    tired = (1 - w) * fatigue[topic[item]] + w * fatigue[second[item]]
    return affinity + p.quality_weight * quality[item] - p.fatigue_weight * tired


@njit(cache=True)
def draw_candidates(out, num_items, strides, u, i):
    """Fill ``out`` ``(M,)`` with distinct catalogue indices in O(M) whatever the catalogue size: an
    arithmetic progression modulo ``num_items`` with a random start and a random stride coprime to it."""
    a, i = uniform(u, i)
    b, i = uniform(u, i)
    item = int(a * num_items)
    stride = strides[int(b * strides.shape[0])]
    for j in range(out.shape[0]):
        out[j] = item
        item += stride
        item -= num_items * (item >= num_items)  # branch-free: the wrap is unpredictable
    return i


def uniforms_per_session(choice_model: int, slate_size: int) -> int:
    """Length of each session's slice of the uniform block."""
    return UNIFORMS_PER_SESSION + (slate_size if choice_model == CASCADE else 0)


@njit(cache=True)
def step(u, stride, actions, candidates, next_candidates, strides, world, users, state, p, clock, impression_base, out):
    """Advance every session by one slate, one after the other (see :func:`step_session`)."""
    for b in range(actions.shape[0]):
        step_session(
            b,
            u,
            stride,
            actions,
            candidates,
            next_candidates,
            strides,
            world,
            users,
            state,
            p,
            clock,
            impression_base,
            out,
        )


@njit(cache=True, parallel=True)
def step_parallel(
    u, stride, actions, candidates, next_candidates, strides, world, users, state, p, clock, impression_base, out
):
    """:func:`step` with the sessions spread over numba's threads; the result is the same bit for bit
    (each session reads its own uniforms and writes its own rows). The tuples are taken apart and put
    back together inside the loop because a parallel loop body cannot receive tuples of arrays."""
    (topic, second, weight, quality), attrs, (no_click, temperature, leave, bias, propensity, spam), signals = world
    session, steps, interests, fatigue, mood, budget, history = state
    utility, masked, choice, ended, records, emitted, scratch = out
    for b in prange(actions.shape[0]):
        step_session(
            b,
            u,
            stride,
            actions,
            candidates,
            next_candidates,
            strides,
            ((topic, second, weight, quality), attrs, (no_click, temperature, leave, bias, propensity, spam), signals),
            users,
            (session, steps, interests, fatigue, mood, budget, history),
            p,
            clock,
            impression_base,
            (utility, masked, choice, ended, records, emitted, scratch),
        )


@njit(cache=True)
def step_session(
    b, u, stride, actions, candidates, next_candidates, strides, world, users, state, p, clock, impression_base, out
):
    """Advance session ``b`` by its slate ``actions[b]`` ``(k,)``, reading uniforms ``u[b·stride : (b+1)·stride]``.

    ``world``: (catalog, attrs, population, signals) — catalog (topic, second, weight, quality) arrays
    ``(N,)``, attrs ``(N, A)``, population (no_click, temperature, leave, rating_bias, rating_propensity,
    spam) ``(U,)``, signals ``(S,)`` the domain's implicit signals;
    ``state``: (session, steps, interests, fatigue, mood, budget, history) arrays ``(B, ...)``;
    ``out``: (utility ``(B, k)``, masked ``(B, k)``, choice ``(B,)``, ended ``(B, 2)`` (terminated,
    truncated), records ``(B, S + 2)``, emitted ``(B,)`` records written per session, scratch
    ``(B, max(k, S))`` float64).
    """
    (topic, second, weight, quality), attrs, population, signals = world
    session, steps, interests, fatigue, mood, budget, history = state
    no_click, temperature, leave, rating_bias, rating_propensity, spam = population
    utility, masked, choice, ended, records, emitted, scratch = out
    k = actions.shape[1]
    i = b * stride
    usr = users[b]
    for j in range(k):
        masked[b, j] = False
        for jj in range(j):
            if actions[b, jj] == actions[b, j]:
                masked[b, j] = True
        item = candidates[b, actions[b, j]]
        utility[b, j] = item_utility(interests[b], fatigue[b], item, topic, second, weight, quality, p)
    if p.choice_model == CASCADE:
        c, i = choose_cascade(utility[b], masked[b], no_click[usr], temperature[usr], p.position_bias, u, i)
    else:
        c, i = choose_mnl(utility[b], masked[b], no_click[usr], temperature[usr], u, i, scratch[b])
    slip, i = bernoulli(p.misclick_rate, u, i)
    if slip:
        a, i = uniform(u, i)
        c = int(a * k)
        c = -1 if masked[b, c] else c
    else:
        i += 1
    choice[b] = c
    spent = 1.0
    for t in range(fatigue.shape[1]):
        fatigue[b, t] *= p.fatigue_decay
    n = 0
    if c >= 0:
        item = candidates[b, actions[b, c]]
        noise, i = normal(u, i)
        satisfaction = sigmoid(SATISFACTION_SLOPE * (utility[b, c] - no_click[usr]) + SATISFACTION_NOISE * noise)
        values = scratch[b]
        engagement, may_rate, i = respond(p.response, satisfaction, attrs[item], u, i, values)
        impression = impression_base + b
        for s in range(signals.shape[0]):
            _emit(records[b, n], impression, usr, b, session[b], item, c, signals[s], values[s], clock)
            n += 1
        rate, i = bernoulli(rating_propensity[usr], u, i)
        if may_rate and rate:
            stars, i = _stars(satisfaction, rating_bias[usr], spam[usr], p.rating_noise, u, i)
            _emit(records[b, n], impression, usr, b, session[b], item, c, RATING, stars, clock)
            n += 1
            write, i = bernoulli(0.5, u, i)
            phrasing, i = uniform(u, i)
            if write and p.text_kind >= 0:
                _emit(records[b, n], impression, usr, b, session[b], item, c, p.text_kind, 1.0, clock)
                records[b, n]["text_id"] = (int(stars) - 1) * PHRASINGS + int(phrasing * PHRASINGS)
                n += 1
        _consume(b, item, satisfaction, topic, second, weight, interests, fatigue, history, p)
        spent += engagement
        mood[b] = 0.85 * mood[b] + 0.15 * 2.0 * satisfaction
    else:
        mood[b] = 0.85 * mood[b]
    emitted[b] = n
    for j in range(k):
        if masked[b, j]:
            utility[b, j] = 0.0
    steps[b] += 1
    budget[b] -= spent
    ended[b, 0] = budget[b] <= 0 or mood[b] < leave[usr]
    ended[b, 1] = not ended[b, 0] and p.max_episode_steps > 0 and steps[b] >= p.max_episode_steps
    draw_candidates(next_candidates[b], topic.shape[0], strides, u, b * stride + stride - 2)


@njit(cache=True, inline="always")
def _emit(record, impression, user, env, session, item, position, kind, value, clock):
    record["impression_id"] = impression
    record["user_id"] = user
    record["env_index"] = env
    record["session_id"] = session
    record["item_index"] = item
    record["position"] = position
    record["kind"] = kind
    record["value"] = value
    record["step_shown"] = clock
    record["step_arrived"] = -1
    record["text_id"] = -1


@njit(cache=True)
def _stars(satisfaction, bias, spam, noise_std, u, i):
    """A 1..5 rating: ``1 + 4 · satisfaction`` + the user's bias + noise, rounded; spammers rate at random."""
    noise, i = normal(u, i)
    a, i = uniform(u, i)
    if spam:
        return float(1 + int(a * 5)), i
    return float(min(max(round(1.0 + 4.0 * satisfaction + bias + noise_std * noise), 1.0), 5.0)), i


@njit(cache=True)
def _consume(b, item, satisfaction, topic, second, weight, interests, fatigue, history, p):
    """Fatigue builds on the item's topics; interests drift toward them if liked, away if not."""
    w = weight[item]
    fatigue[b, topic[item]] += 1 - w
    fatigue[b, second[item]] += w
    drift = p.drift_rate * (2.0 * satisfaction - 1.0)
    interests[b, topic[item]] = min(max(interests[b, topic[item]] + drift * (1 - w), -4.0), 4.0)
    interests[b, second[item]] = min(max(interests[b, second[item]] + drift * w, -4.0), 4.0)
    for h in range(history.shape[1] - 1):
        history[b, h] = history[b, h + 1]
    history[b, history.shape[1] - 1] = item
