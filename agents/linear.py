"""The linear reward model shared by LinUCB and linear Thompson sampling, learned under delayed feedback.

An item ``v`` (its ``candidate_features`` row, ``(d,)``) shown to a user summed up by ``u = [p, s, l]``
``(3d,)`` — engagement profile, this session's consumption, latest consumed item; see
:mod:`agents.context` — is described by ``x = [1, v, p ⊙ v, s ⊙ v, l ⊙ v]`` ``(1 + 4d,)``: item effects,
and how much the item resembles the user's taste, their session and their very last pick. The model is
ridge regression of an item's arrived credit (:mod:`agents.credit`) on ``x``, kept as sufficient
statistics ``A = λI + Σ x xᵀ`` and ``b = Σ r x``.

Delays: every shown item enters ``A`` at once, labelled 0; each record's credit is added to ``b`` with
the ``x`` of the impression it belongs to when it arrives. For least squares this is exactly "label at
once and correct later": the statistics equal those of an oracle that knew the final labels, once all
feedback is in. Impressions are remembered for ``feedback_window`` slates; credit arriving later than
that (e.g. waiting for the user's next session) is dropped and counted as ``stale_records``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.base import Task, Transition, top_k
from agents.context import PARTS, UserContext
from agents.credit import FeedbackAgent


def interactions(user: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``x`` ``(B, J, 1 + 4d)`` float64 for user summaries ``(B, 3d)`` and item features ``(B, J, d)``."""
    parts = np.split(user[:, None, :], PARTS, axis=-1)
    return np.concatenate([np.ones((*items.shape[:2], 1)), items, *(part * items for part in parts)], axis=-1)


class ImpressionLog:
    """The last ``capacity`` slates, by impression id: who saw them ``(3d,)`` and what was shown ``(k,)``."""

    def __init__(self, capacity: int, user_dim: int, slate_size: int) -> None:
        self.ids = np.full(capacity, -1, np.int64)
        self.users = np.zeros((capacity, user_dim), np.float32)
        self.items = np.zeros((capacity, slate_size), np.int64)

    def add(self, ids: np.ndarray, users: np.ndarray, items: np.ndarray) -> None:
        """Remember impressions ``ids`` ``(B,)`` with user summaries ``(B, 3d)`` and items ``(B, k)``."""
        rows = ids % len(self.ids)
        self.ids[rows], self.users[rows], self.items[rows] = ids, users, items

    def users_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """User summaries ``(n, 3d)`` of the remembered ones among ``ids`` ``(E,)``, and which ``(E,)`` bool."""
        rows = ids % len(self.ids)
        known = self.ids[rows] == ids
        return self.users[rows[known]], known


class LinearBandit(FeedbackAgent):
    """Base of the linear bandits: the model above; subclasses choose how to score (:meth:`scores`).

    Args:
        ridge: ``λ`` > 0, the prior precision.
        feedback_window: impressions remembered for crediting late feedback.
        update_every: batched steps between solves of the regression (``O(D³)`` each).

    Attributes:
        gram: ``A`` ``(D, D)``; target: ``b`` ``(D,)``; theta: ``A⁻¹ b``; covariance: ``A⁻¹``, refreshed
        by :meth:`update`.
    """

    def __init__(
        self, task: Task, seed: int = 0, ridge: float = 1.0, feedback_window: int = 16384, update_every: int = 1
    ) -> None:
        if not ridge > 0:
            raise ValueError(f"ridge={ridge!r}; expected a number > 0")
        for name, value in (("feedback_window", feedback_window), ("update_every", update_every)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}={value!r}; expected an integer >= 1")
        super().__init__(task, seed)
        self.update_every = int(update_every)
        self.context = UserContext(task)
        size = 1 + (PARTS + 1) * self.context.dim
        self.gram, self.target = ridge * np.eye(size), np.zeros(size)
        self.impressions = ImpressionLog(int(feedback_window), PARTS * self.context.dim, task.slate_size)
        self.stale = 0
        self.update()

    def features(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``x`` ``(B, M, D)`` of every candidate for its session's user."""
        return interactions(self.context.describe(obs), obs["candidate_features"])

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        """``(B, M)`` how good each candidate looks; greedy ``x·θ`` when not exploring."""
        return self.features(obs) @ self.theta

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        return top_k(self.scores(obs, explore), self.task.slate_size)

    def observe(self, transition: Transition) -> None:
        obs = transition.obs
        users = self.context.describe(obs)
        shown = np.take_along_axis(obs["candidates"], transition.action, axis=1)
        x = interactions(users, self.context.features[shown])
        self.gram += np.einsum("bki,bkj->ij", x, x)
        self.impressions.add(transition.info["impression_id"], users, shown)
        records, reward = self.credit(transition)
        self.context.remember(records, reward)
        seen_by, known = self.impressions.users_of(records["impression_id"])
        self.stale += int((~known).sum())
        items = self.context.features[records["item_index"][known]]
        self.target += reward[known] @ interactions(seen_by, items[:, None, :])[:, 0]

    def update(self) -> dict[str, float]:
        """Solve the ridge regression; returns ``stale`` (credit dropped so far) for logging."""
        self.covariance = np.linalg.inv(self.gram)
        self.theta = self.covariance @ self.target
        return {"stale_records": float(self.stale), "theta_norm": float(np.linalg.norm(self.theta))}

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        self.context.save(directory)
        log = self.impressions
        np.savez(
            Path(directory) / "linear.npz",
            gram=self.gram, target=self.target, stale=self.stale, ids=log.ids, users=log.users, items=log.items,
        )  # fmt: skip

    def load(self, directory: str | Path) -> None:
        super().load(directory)
        self.context.load(directory)
        log = self.impressions
        with np.load(Path(directory) / "linear.npz") as state:
            self.gram, self.target, self.stale = state["gram"], state["target"], int(state["stale"])
            log.ids, log.users, log.items = state["ids"], state["users"], state["items"]
        self.update()
