"""What each candidate is worth if chosen: the expected reward of the feedback its consumption sends.

The oracle (:class:`agents.oracle.OracleAgent`) needs, besides each candidate's hidden utility, the reward its
consumption earns on average: ``E[Σ_s w_s (v_s − neutral_s)]`` over the records the user sends — the domain's
implicit signals, a rating and its text when the user rates — whatever their delay. It is estimated by running
the kernel's own consumption (:func:`envs.dynamics.consumption`) ``draws`` times per candidate on a fixed set of
stream keys (common random numbers: the same draws for every candidate, so their ranking is not blurred by
simulation noise), which also keeps the estimate to the simulator's one formula.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from envs.draws import GOLDEN
from envs.dynamics import RATING, SessionState, World, candidate_slot, consumption, item_utility

DRAWS = 64
"""Consumptions simulated per candidate."""


@njit(cache=True, parallel=True)
def expected_rewards(world, state, params, draws, weight, neutral, samples, tick, sessions, out):
    """``out`` ``(n, M)``: the mean reward over ``samples`` consumptions of the candidates of each of ``sessions``
    ``(n,)`` (indices of the batch) at ``tick``, sessions spread over numba's threads.

    ``world``, ``state``: tuples of a :class:`~envs.dynamics.World` and a :class:`~envs.dynamics.SessionState`;
    ``params``: the kernel's :class:`~envs.dynamics.Dynamics` record; ``draws``: its
    :class:`~envs.dynamics.DrawLayout` record; ``weight``, ``neutral``: ``(S,)`` the reward weight and neutral
    value of each signal kind.
    """
    for i in prange(len(sessions)):
        _expected_rewards_of(sessions[i], world, state, params, draws, weight, neutral, samples, tick, out[i])


@njit(cache=True)
def _expected_rewards_of(b, world, state, params, draws, weight, neutral, samples, tick, out):
    """Session ``b``'s row ``out`` ``(M,)`` of :func:`expected_rewards`."""
    world, state = World(*world), SessionState(*state)
    p, d = params[0], draws[0]
    signals = world.signals
    text_weight = weight[p.text_kind] * (1.0 - neutral[p.text_kind]) if p.text_kind >= 0 else 0.0
    person = world.people[state.user[b]]
    values = np.empty((1, signals.shape[0]))
    for j in range(out.shape[0]):
        item = candidate_slot(state, b, j, world.items.shape[0], p.churn)
        utility = item_utility(state.interests, state.fatigue, b, world.items[item], p, tick)
        total = 0.0
        for n in range(samples):
            key = np.uint64(n + 1) * GOLDEN  # the same keys for every candidate and session
            _, _, stars, text_id = consumption(utility, person, item, world, p, d, key, 0, values, 0)
            for s in range(signals.shape[0]):
                total += weight[signals[s]] * (values[0, s] - neutral[signals[s]])
            if stars > 0:
                total += weight[RATING] * (stars - neutral[RATING])
            if text_id >= 0:
                total += text_weight
        out[j] = total / samples
