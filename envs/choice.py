"""Choice models: which slate position (if any) a user picks.

Compiled scalar functions called per session by the step kernel. Each takes the slate's utilities
``(k,)``, which slots are masked ``(k,)``, the user's no-click utility and click temperature, and the
uniform block with its cursor; it returns the chosen position (``-1`` for no click) and the cursor.
"""

from __future__ import annotations

import math

from numba import njit

from envs.draws import sigmoid, uniform

MNL, CASCADE = 0, 1
CHOICE_MODELS = {"mnl": MNL, "cascade": CASCADE}


@njit(cache=True)
def choose_mnl(utility, masked, no_click, temperature, u, i, weights):
    """Multinomial logit with a no-click option: ``P(j) ∝ exp(u_j / τ)``, ``P(none) ∝ exp(u_0 / τ)``.
    Position does not matter. One uniform, inverse CDF; ``weights`` is ``(k,)`` scratch space."""
    top = no_click
    for j in range(utility.shape[0]):
        if not masked[j]:
            top = max(top, utility[j])
    total = math.exp((no_click - top) / temperature)
    for j in range(utility.shape[0]):
        weights[j] = 0.0 if masked[j] else math.exp((utility[j] - top) / temperature)
        total += weights[j]
    a, i = uniform(u, i)
    target = a * total
    for j in range(utility.shape[0]):
        target -= weights[j]
        if target < 0:
            return j, i
    return -1, i


@njit(cache=True)
def choose_cascade(utility, masked, no_click, temperature, position_bias, u, i):
    """Top-down scan with position bias: slot ``j`` is examined with probability ``position_bias ** j``
    and clicked if attractive (``sigmoid((u_j - u_0) / τ)``); the user takes the first click.
    One uniform per slot scanned."""
    for j in range(utility.shape[0]):
        a, i = uniform(u, i)
        if not masked[j] and a < position_bias**j * sigmoid((utility[j] - no_click) / temperature):
            return j, i
    return -1, i
