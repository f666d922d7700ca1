"""What an agent can tell about a user: their engagement so far, in the candidates' embedding space.

An observation carries features only for the current candidates (``candidate_features`` ``(M, d)``:
category and attribute features by default, BERT embeddings when the runner passes them); the history
and the feedback records name items by catalogue index. :class:`UserContext` remembers the features of
every item it has seen as a candidate — an item is always a candidate before it can be consumed — so
it can describe a user with three ``d``-vectors:

- ``profile``: the credit-weighted mean features of the items the user engaged with, from arrived
  feedback (:mod:`agents.credit`) over all their sessions so far — learned, like any model state, only
  from feedback the agent observed;
- ``session``: the mean features of the items consumed this session (from ``obs["history"]``);
- ``latest``: the features of the item consumed last (repetition and fatigue).

The contextual bandits and the Stable-Baselines3 features extractor read this one summary.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agents.base import Task

PARTS = 3  # profile, session, latest


class UserContext:
    """Item features seen so far, per-user engagement profiles, and the user summary built from them.

    Attributes:
        dim: ``d``, the width of ``candidate_features``.
        features: ``(num_items, d)`` float32, the last features observed for each item (zeros if never).
        profile: ``(num_users, d)`` float64, credit-weighted sums of engaged items' features.
        weight: ``(num_users,)`` float64, the summed absolute credit behind each profile.
    """

    def __init__(self, task: Task) -> None:
        space = task.observation_space.spaces.get("candidate_features")
        if space is None:
            raise ValueError(
                "this agent reads obs['candidate_features'], which the environment leaves out when "
                "item_features=None; make it with item_features='meta' (the default) or an (num_items, d) array"
            )
        self.dim = int(space.shape[1])
        num_users = int(task.observation_space["user_id"].high.max()) + 1
        self.features = np.zeros((task.catalog.num_items, self.dim), np.float32)
        self.profile = np.zeros((num_users, self.dim))
        self.weight = np.zeros(num_users)

    @property
    def space(self) -> spaces.Box:
        """The single-session space of :meth:`describe`'s rows: ``(3d,)`` float32."""
        return spaces.Box(-np.inf, np.inf, (PARTS * self.dim,), np.float32)

    def describe(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``(B, 3d)`` float32: ``[profile, session, latest]`` of each row's user (zeros where there is
        nothing yet). Also records the candidates' features."""
        self.features[obs["candidates"]] = obs["candidate_features"]
        users = obs["user_id"][:, 0]
        profile = self.profile[users] / np.maximum(self.weight[users], 1e-12)[:, None]
        history = obs["history"]
        consumed = history >= 0
        items = self.features[history] * consumed[..., None]
        session = items.sum(axis=1) / np.maximum(consumed.sum(axis=1), 1)[:, None]
        return np.concatenate([profile, session, items[:, -1]], axis=1).astype(np.float32)

    def remember(self, records: np.ndarray, credit: np.ndarray) -> None:
        """Add arrived ``records`` ``(E,)`` with their ``credit`` ``(E,)`` to their users' profiles."""
        engaged = self.features[records["item_index"]] * credit[:, None]
        np.add.at(self.profile, records["user_id"], engaged)
        np.add.at(self.weight, records["user_id"], np.abs(credit))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"features": self.features, "profile": self.profile, "weight": self.weight}

    def load_state_dict(self, state) -> None:
        self.features, self.profile, self.weight = (np.array(state[k]) for k in ("features", "profile", "weight"))
