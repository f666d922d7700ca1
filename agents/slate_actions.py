"""How a policy's raw action becomes a slate of ``k`` distinct candidates.

A ``MultiDiscrete([M] * k)`` action already is a slate; a ``Discrete(M)`` action (DQN) names one
item, and :class:`LeadItem` fills the rest of the slate by a fixed, documented rule — part of the
environment the policy learns in, the same in training and evaluation.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agents.base import top_k


class Slate:
    """``MultiDiscrete([M] * k)`` → the slate itself, refusing one that repeats a candidate.

    SB3's independent categorical heads would repeat candidates; :class:`agents.sb3_policies.SlatePolicy`
    samples without replacement instead, so a repeat here is a policy bug and raises at once rather
    than reaching the environment as a silently masked slot.
    """

    def __init__(self, num_candidates: int, slate_size: int) -> None:
        self.space = spaces.MultiDiscrete([num_candidates] * slate_size)

    def __call__(self, actions: np.ndarray, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Slates ``(B, k)`` from actions ``(B, k)``."""
        slates = np.asarray(actions, np.int64).reshape(-1, len(self.space.nvec))
        ordered = np.sort(slates, axis=1)
        repeats = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if repeats.any():
            row = int(np.argmax(repeats))
            raise ValueError(
                f"slate {slates[row].tolist()} (row {row}) repeats a candidate; a slate policy must draw distinct ones"
            )
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


SLATE_ACTIONS = {"slate": Slate, "lead_item": LeadItem}
