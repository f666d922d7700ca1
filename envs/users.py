"""The simulated user population: who the users are, and how their hidden state evolves.

A :class:`Population` of ``U`` users is fixed by its seed. Each user has latent interests over the hidden
topics (which drift toward what they consume, and persist across sessions), a rating bias, a rating
propensity (explicit feedback is rare), patience, a no-click threshold, click noise, a leave threshold,
and may be a spam rater. Per-session state (fatigue, mood, time budget) lives in the simulator.
:meth:`Population.fitted` builds users whose interests were fitted to real data (MovieLens, MIND).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserParams:
    """How the population is drawn (all fields documented with their units)."""

    favourite_topics: int = 2  # topics each user especially likes
    mean_patience: float = 30.0  # session time budget, in steps (an item consumed in full costs 2)
    mean_rating_propensity: float = 0.04  # chance of rating a consumed item
    spam_fraction: float = 0.02  # users who rate at random
    rating_bias_spread: float = 0.4  # standard deviation of the users' rating bias, in stars
    click_temperature: tuple[float, float] = (0.6, 1.2)  # range of choice noise (softmax temperature)


class Population:
    """``num_users`` users over ``num_topics`` topics; every array is indexed by user.

    Attributes:
        interests: ``(U, T)`` float32 current latent interests (mutated by drift; see :meth:`restore`).
        rating_bias: ``(U,)`` stars added to every rating (harsh < 0 < generous).
        rating_propensity: ``(U,)`` probability of rating a consumed item.
        patience: ``(U,)`` session time budget in steps.
        no_click_utility: ``(U,)`` utility of leaving the slate alone.
        click_temperature: ``(U,)`` softmax temperature of the choice (higher = noisier clicks).
        leave_threshold: ``(U,)`` mood under which the user ends the session.
        spam: ``(U,)`` bool, rates uniformly at random.
    """

    def __init__(self, num_users: int, num_topics: int, seed: int, params: UserParams | None = None) -> None:
        p = params or UserParams()
        rng = np.random.default_rng(seed)
        shape = (num_users, num_topics)
        interests = rng.normal(-0.3, 0.5, shape)
        favourites = np.argsort(rng.random(shape), axis=1)[:, : p.favourite_topics]
        np.put_along_axis(interests, favourites, rng.uniform(1.0, 2.0, (num_users, p.favourite_topics)), axis=1)
        self.initial_interests = interests.astype(np.float32)
        self.interests = self.initial_interests.copy()
        self.rating_bias = rng.normal(0.0, p.rating_bias_spread, num_users).astype(np.float32)
        self.rating_propensity = _propensities(p.mean_rating_propensity, num_users, rng)
        self.patience = rng.gamma(4.0, p.mean_patience / 4.0, num_users).astype(np.float32)
        self.no_click_utility = rng.normal(1.0, 0.3, num_users).astype(np.float32)
        self.click_temperature = rng.uniform(*p.click_temperature, num_users).astype(np.float32)
        self.leave_threshold = rng.uniform(0.3, 0.5, num_users).astype(np.float32)
        self.spam = rng.random(num_users) < p.spam_fraction

    @classmethod
    def fitted(
        cls,
        affinity: np.ndarray,
        seed: int,
        params: UserParams | None = None,
        rating_bias: np.ndarray | None = None,
    ) -> Population:
        """Users whose tastes were fitted to real data.

        Args:
            affinity: ``(U, T)`` fitted utility of each topic *relative to the user's no-click option*
                (the simulator compares utility with it); interests become ``affinity + no_click_utility``.
            seed: draws what the data do not tell, as the default population does: rating propensity,
                patience, no-click level, click temperature, leave threshold and spam raters.
            params: how those traits are drawn.
            rating_bias: ``(U,)`` fitted stars added to every rating, or None to draw it.
        """
        affinity = np.asarray(affinity, dtype=np.float32)
        if affinity.ndim != 2 or not np.isfinite(affinity).all():
            raise ValueError(f"affinity has shape {affinity.shape}; expected a finite (num_users, num_topics) array")
        population = cls(affinity.shape[0], affinity.shape[1], seed, params)
        population.initial_interests = affinity + population.no_click_utility[:, None]
        population.interests = population.initial_interests.copy()
        if rating_bias is not None:
            if np.shape(rating_bias) != (affinity.shape[0],):
                raise ValueError(f"rating_bias has shape {np.shape(rating_bias)}; expected ({affinity.shape[0]},)")
            population.rating_bias = np.asarray(rating_bias, dtype=np.float32)
        return population

    def __len__(self) -> int:
        return len(self.interests)

    def restore(self) -> None:
        """Undo all interest drift: back to the population as drawn."""
        self.interests[:] = self.initial_interests


def _propensities(mean: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` per-user chances of rating: Beta(2, ·) around ``mean`` (exactly ``mean`` at 0 or 1)."""
    if mean <= 0.0 or mean >= 1.0:
        return np.full(n, mean)
    return rng.beta(2.0, 2.0 * (1 - mean) / mean, n)
