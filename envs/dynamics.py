"""The compiled per-step user dynamics, looping over the ``B`` sessions.

For each session: look up the slate's items, mask repeated slots, compute the hidden utility of each
shown item, let the choice model pick a slot (or none; sometimes a misclick), turn a consumption into the
domain's implicit signals and, rarely, a rating (and text), evolve the user (fatigue, interest drift,
mood, time budget) and draw the next candidates. Randomness comes from a keyed stream of uniforms, a fixed
range of positions per session (see :mod:`envs.draws`).

The kernel and its helpers (here and in :mod:`envs.choice`, :mod:`envs.responses`, :mod:`envs.draws`)
never allocate, so they are compiled without numba's reference counting (``_nrt=False``): counting the
references of every array argument, per session and per helper call, cost more than the simulation.
Sessions index the ``(B, ...)`` arrays by row instead of taking row views, for the same reason."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
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
SESSIONS_PER_TASK = 64  # sessions a thread of step_parallel takes at a time


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

    def as_array(self) -> np.ndarray:
        """These parameters as a one-element :data:`DYNAMICS_DTYPE` array, the form the kernel takes
        (an array crosses into compiled code several times faster than a named tuple)."""
        return np.array([tuple(self)], DYNAMICS_DTYPE)


DYNAMICS_DTYPE = np.dtype(
    [(name, np.int64 if kind is int else np.float64) for name, kind in Dynamics.__annotations__.items()]
)


ITEM_DTYPE = np.dtype([("topic", np.int32), ("second", np.int32), ("weight", np.float32), ("quality", np.float32)])
"""What the kernel reads of an item: main topic, secondary topic, the secondary topic's weight, hidden quality."""
USER_DTYPE = np.dtype(
    [
        ("no_click", np.float32),  # utility of leaving the slate alone
        ("temperature", np.float32),  # softmax temperature of the choice
        ("leave", np.float32),  # mood under which the session ends
        ("rating_bias", np.float32),  # stars added to every rating
        ("rating_propensity", np.float64),  # probability of rating a consumed item
        ("spam", np.bool_),  # rates uniformly at random
    ]
)
"""What the kernel reads of a user (fixed traits; drifting interests live apart)."""


@njit(cache=True, _nrt=False)
def item_utility(interests, fatigue, b, item, p):
    """Hidden utility of ``item`` (an :data:`ITEM_DTYPE` record) for session ``b``'s user (rows of
    ``(B, T)`` interests and fatigue): topic affinity + quality − topic fatigue."""
    w = item.weight
    affinity = (1 - w) * interests[b, item.topic] + w * interests[b, item.second]
    tired = (1 - w) * fatigue[b, item.topic] + w * fatigue[b, item.second]
    return affinity + p.quality_weight * item.quality - p.fatigue_weight * tired


@njit(cache=True, _nrt=False)
def draw_candidates(out, progression, b, num_items, strides, key, i):
    """Draw session ``b``'s next ``M`` distinct candidates in O(M) whatever the catalogue size: an arithmetic
    progression modulo ``num_items`` with a random start and a random stride coprime to it, kept in
    ``progression[b]`` ``(start, stride)`` and written out in row ``b`` of ``out`` ``(B, M)``."""
    a, i = uniform(key, i)
    c, i = uniform(key, i)
    progression[b, 0] = int(a * num_items)
    progression[b, 1] = strides[int(c * strides.shape[0])]
    for j in range(out.shape[1]):  # independent entries (no running sum), so the loop vectorises
        out[b, j] = candidate_item(progression, b, j, num_items)
    return i


@njit(cache=True, _nrt=False)
def candidate_item(progression, b, j, num_items):
    """Catalogue index of session ``b``'s candidate ``j``: ``(start + j · stride) mod num_items``, computed
    from the session's progression rather than read back from the candidate array (a cache miss each).
    Exact while ``start + j · stride`` < 2^53, i.e. while ``num_items · (M + 1)`` < 2^53."""
    x = progression[b, 0] + j * progression[b, 1]
    item = x - int(x * (1.0 / num_items)) * num_items  # x mod num_items, give or take one num_items
    item += num_items * (item < 0)
    return item - num_items * (item >= num_items)


def uniforms_per_session(choice_model: int, slate_size: int) -> int:
    """How many positions of the uniform stream each session owns."""
    return UNIFORMS_PER_SESSION + (slate_size if choice_model == CASCADE else 0)


@njit(cache=True, _nrt=False)
def step(
    key, stride, actions, progression, next_candidates, strides, world, users, state, params, clock, impression_base,
    out,
):  # fmt: skip
    """Advance every session by one slate, one after the other.

    ``key``: the uniform stream (:mod:`envs.draws`), ``stride`` positions per session; ``progression``
    ``(B, 2)``: each session's candidates as (start, stride), read for this slate and replaced by the
    next candidates', which are written out to ``next_candidates`` ``(B, M)``; ``world``: (items
    :data:`ITEM_DTYPE` ``(N,)``, attrs ``(N, A)``, people :data:`USER_DTYPE` ``(U,)``, signals ``(S,)``
    the domain's implicit signals); ``users`` ``(B,)`` who is in each session;
    ``state``: (session, steps, interests, fatigue, mood, budget, history) arrays ``(B, ...)``;
    ``params``: :meth:`Dynamics.as_array`; ``out``: (utility ``(B, k)``, masked ``(B, k)``, choice ``(B,)``,
    ended ``(B, 2)`` (terminated, truncated), next history ``(B, L)`` (the history after this step), records
    ``(B, S + 2)``, emitted ``(B,)`` records written per session, scratch ``(B, max(k, S))`` float64). See
    :func:`step_session` for one session's step.
    """
    step_range(
        0, actions.shape[0], key, stride, actions, progression, next_candidates, strides, world, users, state, params,
        clock, impression_base, out,
    )  # fmt: skip


@njit(cache=True, parallel=True)
def step_parallel(
    key, stride, actions, progression, next_candidates, strides, world, users, state, params, clock, impression_base,
    out,
):  # fmt: skip
    """:func:`step` with the sessions in ranges of :data:`SESSIONS_PER_TASK` spread over numba's threads; the
    result is the same bit for bit (each session reads its own uniforms and writes its own rows). The tuples are taken
    apart and put back together inside the loop because a parallel loop body cannot receive tuples of arrays."""
    items, attrs, people, signals = world
    session, steps, interests, fatigue, mood, budget, history = state
    utility, masked, choice, ended, next_history, records, emitted, scratch = out
    n = actions.shape[0]
    for c in prange((n + SESSIONS_PER_TASK - 1) // SESSIONS_PER_TASK):
        step_range(
            c * SESSIONS_PER_TASK, min((c + 1) * SESSIONS_PER_TASK, n), key, stride, actions, progression,
            next_candidates, strides,
            (items, attrs, people, signals), users, (session, steps, interests, fatigue, mood, budget, history),
            params, clock, impression_base, (utility, masked, choice, ended, next_history, records, emitted, scratch),
        )  # fmt: skip


@njit(cache=True, _nrt=False)
def step_range(
    first, last, key, stride, actions, progression, next_candidates, strides, world, users, state, params, clock,
    impression_base, out,
):  # fmt: skip
    """Advance sessions ``first`` to ``last - 1`` (arguments as in :func:`step`)."""
    items, attrs, people, signals = world
    session, steps, interests, fatigue, mood, budget, history = state
    utility, masked, choice, ended, next_history, records, emitted, scratch = out
    for b in range(first, last):
        step_session(
            b, key, stride, actions, progression, next_candidates, strides, items, attrs, people, signals,
            users, session, steps, interests, fatigue, mood, budget, history, params, clock, impression_base,
            utility, masked, choice, ended, next_history, records, emitted, scratch,
        )  # fmt: skip


@njit(cache=True, _nrt=False, inline="always")
def step_session(
    b, key, stride, actions, progression, next_candidates, strides, items, attrs, people, signals,
    users, session, steps, interests, fatigue, mood, budget, history, params, clock, impression_base,
    utility, masked, choice, ended, next_history, records, emitted, scratch,
):  # fmt: skip
    """Advance session ``b`` by its slate ``actions[b]`` ``(k,)``, reading the uniforms at positions
    ``b·stride`` to ``(b+1)·stride - 1`` of ``key``'s stream.

    The arrays are those of :func:`step`, unpacked, and only ever indexed by ``b`` (no row views): that
    keeps reference counting out of the loop, which would otherwise cost more than the simulation.
    """
    p = params[0]
    k = actions.shape[1]
    i = b * stride
    person = people[users[b]]
    for j in range(k):
        masked[b, j] = False
        for jj in range(j):
            if actions[b, jj] == actions[b, j]:
                masked[b, j] = True
        utility[b, j] = item_utility(
            interests, fatigue, b, items[candidate_item(progression, b, actions[b, j], items.shape[0])], p
        )
    if p.choice_model == CASCADE:
        c, i = choose_cascade(utility, masked, b, person.no_click, person.temperature, p.position_bias, key, i)
    else:
        c, i = choose_mnl(utility, masked, b, person.no_click, person.temperature, key, i, scratch)
    slip, i = bernoulli(p.misclick_rate, key, i)
    if slip:
        a, i = uniform(key, i)
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
        item = candidate_item(progression, b, actions[b, c], items.shape[0])
        noise, i = normal(key, i)
        satisfaction = sigmoid(SATISFACTION_SLOPE * (utility[b, c] - person.no_click) + SATISFACTION_NOISE * noise)
        engagement, may_rate, i = respond(p.response, satisfaction, attrs, item, key, i, scratch, b)
        impression = impression_base + b
        for s in range(signals.shape[0]):
            _emit(records, b, n, impression, users[b], session[b], item, c, signals[s], scratch[b, s], clock)
            n += 1
        rate, i = bernoulli(person.rating_propensity, key, i)
        if may_rate and rate:
            stars, i = _stars(satisfaction, person.rating_bias, person.spam, p.rating_noise, key, i)
            _emit(records, b, n, impression, users[b], session[b], item, c, RATING, stars, clock)
            n += 1
            write, i = bernoulli(0.5, key, i)
            phrasing, i = uniform(key, i)
            if write and p.text_kind >= 0:
                _emit(records, b, n, impression, users[b], session[b], item, c, p.text_kind, 1.0, clock)
                records[b, n].text_id = (int(stars) - 1) * PHRASINGS + int(phrasing * PHRASINGS)
                n += 1
        _consume(b, items[item], satisfaction, interests, fatigue, p)
        spent += engagement
        mood[b] = 0.85 * mood[b] + 0.15 * 2.0 * satisfaction
    else:
        item = -1
        mood[b] = 0.85 * mood[b]
    _remember(history, next_history, b, item)
    emitted[b] = n
    for j in range(k):
        if masked[b, j]:
            utility[b, j] = 0.0
    steps[b] += 1
    budget[b] -= spent
    ended[b, 0] = budget[b] <= 0 or mood[b] < person.leave
    ended[b, 1] = not ended[b, 0] and p.max_episode_steps > 0 and steps[b] >= p.max_episode_steps
    draw_candidates(next_candidates, progression, b, items.shape[0], strides, key, b * stride + stride - 2)


@njit(cache=True, _nrt=False)
def _emit(records, b, n, impression, user, session, item, position, kind, value, clock):
    """Fill ``records[b, n]`` (delivered to sub-environment ``b`` unless its session ends first)."""
    record = records[b, n]
    record.impression_id = impression
    record.user_id = user
    record.env_index = b
    record.session_id = session
    record.item_index = item
    record.position = position
    record.kind = kind
    record.value = value
    record.step_shown = clock
    record.step_arrived = -1
    record.text_id = -1


@njit(cache=True, _nrt=False)
def _stars(satisfaction, bias, spam, noise_std, key, i):
    """A 1..5 rating: ``1 + 4 · satisfaction`` + the user's bias + noise, rounded; spammers rate at random."""
    noise, i = normal(key, i)
    a, i = uniform(key, i)
    if spam:
        return float(1 + int(a * 5)), i
    return float(min(max(round(1.0 + 4.0 * satisfaction + bias + noise_std * noise), 1.0), 5.0)), i


@njit(cache=True, _nrt=False)
def _consume(b, item, satisfaction, interests, fatigue, p):
    """Fatigue builds on the item's topics; interests drift toward them if liked, away if not."""
    w = item.weight
    fatigue[b, item.topic] += 1 - w
    fatigue[b, item.second] += w
    drift = p.drift_rate * (2.0 * satisfaction - 1.0)
    interests[b, item.topic] = min(max(interests[b, item.topic] + drift * (1 - w), -4.0), 4.0)
    interests[b, item.second] = min(max(interests[b, item.second] + drift * w, -4.0), 4.0)


@njit(cache=True, _nrt=False)
def _remember(history, next_history, b, item):
    """Row ``b`` of ``next_history``: row ``b`` of ``history``, shifted left with ``item`` appended if the user
    consumed one (``item >= 0``)."""
    shift = 1 if item >= 0 else 0
    for h in range(history.shape[1] - shift):
        next_history[b, h] = history[b, h + shift]
    if shift:
        next_history[b, history.shape[1] - 1] = item
