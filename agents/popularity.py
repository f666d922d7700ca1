"""Most-popular recommendation: rank candidates by the reward their items have collected so far."""

from __future__ import annotations

import numpy as np

from agents.base import Task, Transition, top_k
from agents.credit import FeedbackAgent
from agents.persistence import Counters


class PopularityAgent(FeedbackAgent):
    """Shows the ``k`` candidates whose items earned the most arrived reward (all users pooled).

    Popularity is learned online: ``shows`` counts each item's impressions when they happen,
    ``earned`` sums each item's arrived feedback credit (:mod:`agents.credit`) when it arrives, so a
    late rating counts from the step it arrives. Not personalised and never exploring on purpose:
    unshown items keep popularity 0 and surface only through ties.

    Attributes:
        shows: ``(num_items,)`` int64 impressions per item.
        earned: ``(num_items,)`` float64 arrived reward per item.
    """

    def __init__(self, task: Task, seed: int = 0) -> None:
        super().__init__(task, seed)
        self.shows = np.zeros(task.catalog.num_items, np.int64)
        self.earned = np.zeros(task.catalog.num_items)

    def scores(self, obs: dict[str, np.ndarray], explore: bool) -> np.ndarray:
        """``(B, M)`` the candidates' popularity."""
        return self.earned[obs["candidates"]]

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> np.ndarray:
        return top_k(self.scores(obs, explore), self.task.slate_size)

    def observe(self, transition: Transition) -> None:
        shown = np.take_along_axis(transition.obs["candidates"], transition.action, axis=1)
        np.add.at(self.shows, shown.ravel(), 1)
        records, reward = self.credit(transition)
        np.add.at(self.earned, records["item_index"], reward)

    def items_published(self, published) -> None:
        """A new item starts with no impressions and no reward."""
        self.shows[published.items], self.earned[published.items] = 0, 0.0

    def update(self) -> dict[str, float]:
        return {"items_shown": float((self.shows > 0).mean())}

    def components(self) -> dict:
        return {"items": Counters(self, ("shows", "earned"))}
