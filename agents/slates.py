"""Slates from scores: top-k with ε-greedy or softmax (Plackett–Luce) exploration, and MMR re-ranking.

Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998) picks, slot by slot, the candidate maximising
``λ · relevance(i) − (1 − λ) · max_{j in slate} similarity(i, j)``, trading relevance for diversity.
"""

from __future__ import annotations

import numpy as np


def build_slates(
    scores: np.ndarray,
    k: int,
    rng: np.random.Generator,
    epsilon: float = 0.0,
    temperature: float | None = None,
    similarity: np.ndarray | None = None,
    mmr_lambda: float | None = None,
) -> np.ndarray:
    """Slates ``(B, k)`` of distinct candidates chosen slot by slot from ``scores`` ``(B, M)``.

    Each slot takes the best remaining candidate by relevance, where relevance is the score, plus Gumbel
    noise times ``temperature`` on row-standardised scores when given (softmax / Plackett-Luce
    sampling), and with ``mmr_lambda`` the MMR trade-off ``λ · relevance − (1 − λ) · max similarity``
    ``(B, M, M)`` to the items already in the slate (relevance min-max scaled per row). With probability
    ``epsilon`` a slot instead takes a uniformly random remaining candidate.
    """
    batch, m = scores.shape
    relevance = scores.astype(np.float64)
    if temperature is not None:
        spread = relevance.std(axis=1, keepdims=True) + 1e-9
        relevance = (relevance - relevance.mean(axis=1, keepdims=True)) / spread
        relevance = relevance - temperature * np.log(-np.log(rng.random(relevance.shape)))
    if mmr_lambda is not None:
        low, high = relevance.min(axis=1, keepdims=True), relevance.max(axis=1, keepdims=True)
        relevance = mmr_lambda * (relevance - low) / np.maximum(high - low, 1e-9)
    rows = np.arange(batch)
    taken = np.zeros((batch, m), bool)
    closest = np.zeros((batch, m))
    slates = np.zeros((batch, k), np.int64)
    for slot in range(k):
        value = relevance - (1.0 - mmr_lambda) * closest if mmr_lambda is not None and slot else relevance.copy()
        value[taken] = -np.inf
        pick = value.argmax(axis=1)
        if epsilon > 0:
            wild = rng.random(batch) < epsilon
            noise = np.where(taken, -1.0, rng.random((batch, m)))
            pick = np.where(wild, noise.argmax(axis=1), pick)
        slates[:, slot] = pick
        taken[rows, pick] = True
        if similarity is not None:
            closest = np.maximum(closest, similarity[rows, pick])
    return slates
