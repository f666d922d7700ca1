"""Local differential privacy: what leaves a user under ``privacy_epsilon = ε``.

**The guarantee.** For every shown item, the user sends one *report* per signal of the domain — its implicit
signals and its rating — whether or not they consumed the item, each privatised on the user's side before it
leaves; so what the recommender receives about one shown item is ε-locally differentially private with respect
to everything the user did with it: for any two outcomes ``x, x'`` of the item and any set ``A`` of reports,
``P(reports ∈ A | x) ≤ e^ε · P(reports ∈ A | x')`` (Dwork & Roth, *The Algorithmic Foundations of Differential
Privacy*, 2014, §3; local model: Kasiviswanathan et al., SIAM J. Comput. 2011). There is no side channel:
every shown item sends the same reports, with delays drawn independently of their values, and the review or
comment text is written from the *privatised* rating (post-processing keeps the guarantee). A slate of ``k`` items
is ``k·ε``-private with respect to the whole slate's outcome (basic composition).

**The budget split.** The ``S + 1`` reports of an item (``S`` implicit signals and the rating) each get
``ε / (S + 1)`` (basic composition), ``ε_r`` below.

**The mechanisms** (Warner, JASA 1965; Dwork, McSherry, Nissim & Smith, TCC 2006; Kairouz, Oh & Viswanath,
JMLR 2016):

- a binary signal (click, share, purchase, ...): randomised response, the true bit kept with probability
  ``e^ε_r / (1 + e^ε_r)``, flipped otherwise;
- a numeric signal (dwell, fractions, amounts): the value clipped into the signal's declared range
  ``[low, high]``, then Laplace noise of scale ``(high − low) / ε_r`` added (the output is not clipped again, so
  it is unbiased for the clipped value);
- the rating, one of ``K`` categories (not rated, or each star value): ``K``-ary randomised response, the true
  category kept with probability ``e^ε_r / (e^ε_r + K − 1)``, else one of the other ``K − 1`` uniformly.
"""

from __future__ import annotations

import math

from numba import njit

from envs.draws import bernoulli, laplace, uniform

REPORT_DRAWS = 2
"""Uniforms one report reads at most (``K``-ary randomised response: keep or not, and which other category)."""


def report_epsilon(epsilon: float, reports: int) -> float:
    """``ε_r``: each of an item's ``reports`` reports' share of the item's ``ε``."""
    return epsilon / reports


@njit(cache=True, _nrt=False)
def randomised_response(bit, epsilon, key, i):
    """``bit`` (0 or 1) kept with probability ``e^ε / (1 + e^ε)``, flipped otherwise."""
    flip, i = bernoulli(1.0 / (1.0 + math.exp(epsilon)), key, i)
    return (1.0 - bit) if flip else bit, i


@njit(cache=True, _nrt=False)
def laplace_report(value, low, high, epsilon, key, i):
    """``value`` clipped into ``[low, high]`` plus Laplace noise of scale ``(high − low) / ε``."""
    noise, i = laplace((high - low) / epsilon, key, i)
    return min(max(value, low), high) + noise, i


@njit(cache=True, _nrt=False)
def categorical_response(category, categories, epsilon, key, i):
    """``category`` in ``0 .. categories − 1`` kept with probability ``e^ε / (e^ε + K − 1)``, else one of the
    other ``K − 1`` categories uniformly."""
    keep = math.exp(epsilon) / (math.exp(epsilon) + categories - 1)
    kept, i = bernoulli(keep, key, i)
    a, i = uniform(key, i)
    if kept:
        return category, i
    other = int(a * (categories - 1))
    return other + (other >= category), i
