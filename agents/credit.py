"""Credit per item: each arrived feedback record scored the way the environment's reward scores it.

The environment's reward for a step is ``Σ weight[kind] * (value - neutral)`` over the records that
arrived in it, whichever slate they belong to. Agents that learn per item split that same sum by record:
a record's credit goes to its ``item_index`` (and ``impression_id``), so every agent pursues the one
objective the reward defines — the feedback strategy's weights in training — and delayed records are
credited late, never early.
"""

from __future__ import annotations

import numpy as np

from agents.base import Agent, Transition
from envs.signals import SIGNALS


def signal_weights(env) -> np.ndarray:
    """``(num_signals,)`` the weight of each signal kind in ``env``'s reward (its definition, not hidden state)."""
    return np.asarray(env.unwrapped.sim.reward_weight, dtype=np.float64)


def record_credit(records: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(E,)`` reward carried by each record ``(E,)``: ``weights[kind] * (value - neutral)``."""
    kinds = records["kind"]
    return weights[kinds] * (records["value"] - SIGNALS.neutral[kinds])


class FeedbackAgent(Agent):
    """An agent that learns from the arrived records of each :class:`~agents.base.Transition`;
    :meth:`attach` reads the environment's signal weights, :meth:`credit` scores records with them."""

    weights: np.ndarray | None = None

    def attach(self, env) -> None:
        self.weights = signal_weights(env)

    def credit(self, transition: Transition) -> tuple[np.ndarray, np.ndarray]:
        """The records that arrived with ``transition`` ``(E,)`` and the reward each carries ``(E,)``."""
        if self.weights is None:
            raise RuntimeError(f"{type(self).__name__}.observe called before attach(env): no reward weights yet")
        records = transition.arrived_feedback()
        return records, record_credit(records, self.weights)
