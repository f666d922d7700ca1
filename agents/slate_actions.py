"""How a policy's raw action becomes a slate of ``k`` distinct candidates.

A policy with independent categorical heads (SB3's ``MultiDiscrete``) can name one candidate in two
slots, and a ``Discrete`` policy (DQN) names just one. These decoders turn either into a valid slate
by a fixed, documented rule, so the policy acts in a well-defined MDP: the rule is part of the
environment it learns in, the same in training and evaluation.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agents.base import top_k


class DistinctSlate:
    """``MultiDiscrete([M] * k)`` → slate: each slot keeps its candidate unless an earlier slot took it;
    then it takes the next free candidate after it, cyclically (``a + 1``, ``a + 2``, ... mod ``M``).

    Every slate of distinct candidates is reachable (and is its own decoding), so this loses nothing.
    """

    def __init__(self, num_candidates: int, slate_size: int) -> None:
        self.space = spaces.MultiDiscrete([num_candidates] * slate_size)

    def __call__(self, actions: np.ndarray, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Slates ``(B, k)`` from actions ``(B, k)``."""
        actions = np.asarray(actions, np.int64).reshape(-1, len(self.space.nvec))
        batch, m = len(actions), int(self.space.nvec[0])
        rows = np.arange(batch)
        taken = np.zeros((batch, m), bool)
        slates = np.empty_like(actions)
        for slot in range(actions.shape[1]):
            order = (actions[:, slot, None] + np.arange(m)) % m
            free = order[rows, np.argmax(~taken[rows[:, None], order], axis=1)]
            slates[:, slot] = free
            taken[rows, free] = True
        return slates


class LeadItem:
    """``Discrete(M)`` → slate: the chosen lead candidate first, then the ``k - 1`` candidates most
    similar to it (cosine of ``candidate_features``; ties broken deterministically).

    A ``Discrete`` action can express *which* item leads and therefore which neighbourhood of the
    item space is shown. It cannot express a slate mixing dissimilar items (two tastes of one user, a
    deliberately diverse list), the order of the other slots, or any slate outside the ``M`` such
    neighbourhoods — out of ``M! / (M - k)!`` slates.
    """

    def __init__(self, num_candidates: int, slate_size: int) -> None:
        self.space = spaces.Discrete(num_candidates)
        self.slate_size = slate_size

    def __call__(self, actions: np.ndarray, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Slates ``(B, k)`` from lead indices ``(B,)`` and ``obs["candidate_features"]`` ``(B, M, d)``."""
        lead = np.asarray(actions, np.int64).reshape(-1)
        features = obs["candidate_features"]
        unit = features / np.maximum(np.linalg.norm(features, axis=2, keepdims=True), 1e-12)
        rows = np.arange(len(lead))
        similarity = np.einsum("bmd,bd->bm", unit, unit[rows, lead])
        similarity[rows, lead] = np.inf
        return top_k(similarity, self.slate_size)


SLATE_ACTIONS = {"slate": DistinctSlate, "lead_item": LeadItem}
