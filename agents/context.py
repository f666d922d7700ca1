"""What an agent can tell about a user from the observation: the items consumed this session.

An observation carries features only for the current candidates (``candidate_features`` ``(M, d)``:
category and attribute features by default, BERT embeddings when the runner passes them); the session
history holds catalogue indices. :class:`UserContext` remembers the features of every item it has seen
as a candidate — an item is always a candidate before it can be consumed — so the history is described
in the candidates' own embedding space. The contextual bandits and the Stable-Baselines3 features
extractor read this one summary.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agents.base import Task


class UserContext:
    """Features of the items seen so far, and the user summary built from them.

    Attributes:
        dim: ``d``, the width of ``candidate_features``.
        features: ``(num_items, d)`` float32, the last features observed for each item (zeros if never).
    """

    def __init__(self, task: Task) -> None:
        space = task.observation_space.spaces.get("candidate_features")
        if space is None:
            raise ValueError(
                "this agent reads obs['candidate_features'], which the environment leaves out when "
                "item_features=None; make it with item_features='meta' (the default) or an (num_items, d) array"
            )
        self.dim = int(space.shape[1])
        self.features = np.zeros((task.catalog.num_items, self.dim), np.float32)

    @property
    def space(self) -> spaces.Box:
        """The single-session space of :meth:`describe`'s rows: ``(2d,)`` float32."""
        return spaces.Box(-np.inf, np.inf, (2 * self.dim,), np.float32)

    def describe(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``(B, 2d)``: the mean features of the items consumed this session, then the latest one's
        (zeros before the first consumption). Also records the candidates' features."""
        self.features[obs["candidates"]] = obs["candidate_features"]
        history = obs["history"]
        consumed = history >= 0
        items = self.features[history] * consumed[..., None]
        mean = items.sum(axis=1) / np.maximum(consumed.sum(axis=1), 1)[:, None]
        return np.concatenate([mean, items[:, -1]], axis=1)
