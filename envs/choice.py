"""Choice models: which slate position (if any) a user picks.

Compiled scalar functions inlined into the step kernel. Each takes the ``(B, k)`` utilities and masked
slots with the session's row ``b``, the user's no-click utility and click temperature, and the uniform
stream's key with its cursor; it returns the chosen position (``-1`` for no click) and the cursor. A model
reads at most :func:`choice_draws` uniforms, the span the step's draw layout gives it
(:class:`envs.dynamics.DrawLayout`).
"""

from __future__ import annotations

import math

from numba import njit

from envs.draws import sigmoid, uniform

MNL, CASCADE = 0, 1
CHOICE_MODELS = {"mnl": MNL, "cascade": CASCADE}


def choice_draws(model: int, slate_size: int) -> int:
    """The most uniforms one choice of ``model`` reads: one for the multinomial logit (inverse CDF), one per
    slot for the cascade (it may scan the whole slate)."""
    return slate_size if model == CASCADE else 1


@njit(cache=True, _nrt=False)
def choose_mnl(utility, masked, b, no_click, temperature, key, i, scratch):
    """Multinomial logit with a no-click option: ``P(j) ∝ exp(u_j / τ)``, ``P(none) ∝ exp(u_0 / τ)``.
    Position does not matter. One uniform, inverse CDF; row ``b`` of ``scratch`` ``(B, ≥ k)`` is overwritten."""
    k = utility.shape[1]
    top = no_click
    for j in range(k):
        if not masked[b, j]:
            top = max(top, utility[b, j])
    total = math.exp((no_click - top) / temperature)
    for j in range(k):
        scratch[b, j] = 0.0 if masked[b, j] else math.exp((utility[b, j] - top) / temperature)
        total += scratch[b, j]
    a, i = uniform(key, i)
    target = a * total
    for j in range(k):
        target -= scratch[b, j]
        if target < 0:
            return j, i
    return -1, i


@njit(cache=True, _nrt=False)
def choose_cascade(utility, masked, b, no_click, temperature, position_bias, key, i):
    """Top-down scan with position bias: slot ``j`` is examined with probability ``position_bias ** j``
    and clicked if attractive (``sigmoid((u_j - u_0) / τ)``); the user takes the first click.
    One uniform per slot scanned."""
    for j in range(utility.shape[1]):
        a, i = uniform(key, i)
        if not masked[b, j] and a < position_bias**j * sigmoid((utility[b, j] - no_click) / temperature):
            return j, i
    return -1, i
