"""Rater models: how much to trust each user's ratings, learnt online from the ratings a learner has seen.

``rater_model=reliability`` fits a hierarchical model of the ratings ``r_n`` (user ``u``, item ``i``) with a spam
component, every user's estimate shrunk toward the population's:

- an honest rater rates ``r = μ_i + b_u + e``, ``e ~ N(0, σ_u²)``: ``μ_i`` the item's consensus, ``b_u`` the user's
  bias (harsh < 0 < generous), ``σ_u²`` their residual variance; a spammer rates uniformly over the ``K`` star
  values; a user is a spammer with prior probability ``π``;
- priors: ``b_u ~ N(0, τ²)``, ``μ_i`` worth ``κ`` pseudo-ratings at the population mean ``m``, ``σ_u²`` a
  scaled-inverse-χ² of ``ν₀`` degrees of freedom around the pooled honest variance ``s²``.

It is fitted by EM-style alternating updates over all ratings logged so far, each rating weighted by ``a_n``
(1, or under local privacy the posterior chance that a report of stars comes from a rating), starting from the last fit:

- spam posterior (the E-step of a two-class mixture, as Dawid & Skene, *Maximum likelihood estimation of observer
  error-rates using the EM algorithm*, Appl. Statist. 1979, do per rater):
  ``P_u = σ(logit π + n_u log(1/(K Δ)) − log N(e_u; 0, s² I + τ² 11ᵀ))``, ``e_u`` the user's offsets from the
  consensus (their bias integrated out), ``Δ`` the scale's step (the honest density times ``Δ`` is its chance of a
  star value), ``π`` the mean of ``P_u``;
- reliability ``ρ_u = (1 − P_u) · min(1, s² / σ_u²)``: precision weighting as in Raykar et al., *Learning from
  crowds*, JMLR 2010, §3 (an annotator's weight its precision ``1/σ_u²``, relative to the population's);
- consensus ``μ_i = (Σ_n a_n ρ_u (r_n − b_u) + κ m) / (Σ_n a_n ρ_u + κ)``;
- bias, the regularised baseline of Koren (*Factorization meets the neighborhood*, KDD 2008, §2.1) with the
  empirical-Bayes penalty ``λ = s² / τ²``: ``b_u = Σ_n a_n e_n / (n_u + λ)``, ``e_n = r_n − μ_i``, ``n_u = Σ a_n``;
  ``τ²`` by the method of moments over honest users, ``Σ_u h_u (ē_u² − s²/n_u) / Σ_u h_u`` with ``h_u = 1 − P_u``
  and ``ē_u`` the user's mean offset;
- variance, the conjugate update of the scaled-inverse-χ² prior (Gelman et al., *Bayesian Data Analysis*, 3rd ed.,
  §2.6) on the user's within-user sum of squares ``W_u = Σ_n a_n (e_n − ē_u)²``:
  ``σ_u² = (ν₀ s² + W_u) / (ν₀ + n_u − 1)``; the pooled ``s² = Σ_u h_u W_u / Σ_u h_u (n_u − 1)`` (the one-way
  ANOVA within-group estimate: each user's own mean costs a degree of freedom, so ``s²`` cannot collapse on users
  with few ratings).

What a learner does with it: trains on de-biased ratings ``r − b_u`` weighted by ``ρ_u`` (:meth:`Raters.debias`,
:meth:`Raters.reliability`), predicts ``f + b_u`` for a user (:meth:`Raters.personalise`), or replaces a rating by
its shrunk value ``ρ_u (r − b_u) + (1 − ρ_u) μ_i`` where it needs one number (:meth:`Raters.clean`); spam scores are
``P_u`` and a user is flagged when ``P_u > 1/2``.

``rater_model=naive`` keeps the same log and consensus with every user trusted alike: no bias, no spam, ``ρ = 1``.
"""

from __future__ import annotations

import math

import numpy as np

from envs.signals import Signal

RATER_MODELS = ("naive", "reliability")
ITEM_PRIOR = 2.0
"""``κ``: pseudo-ratings at the population mean in each item's consensus."""
VARIANCE_PRIOR = 4.0
"""``ν₀``: pseudo-ratings at the pooled variance in each user's residual variance."""
FIT_ITERATIONS = 10
"""Alternating updates per fit (each fit starts from the last one)."""
REFIT_GROWTH = 0.05
"""A fit is due once the log has grown by this share (or by one rating when small) since the last."""


class Raters:
    """The rater model of ``num_users`` users rating ``num_items`` items on ``star_values``.

    Args:
        model: ``"naive"`` or ``"reliability"`` (see the module docstring).
        num_users, num_items: sizes of the user and item index spaces.
        star_values: the scale's star values ``(K,)``, lowest first.
        capacity: ratings kept in the log (the oldest are overwritten).

    Attributes:
        consensus: ``(num_items,)`` ``μ_i`` in stars; bias: ``(num_users,)`` ``b_u`` in stars; variance:
            ``(num_users,)`` ``σ_u²`` in stars²; spam: ``(num_users,)`` ``P_u``; rated: ``(num_users,)`` weighted
            ratings seen per user (in the log).
    """

    def __init__(self, model: str, num_users: int, num_items: int, star_values, capacity: int = 200_000) -> None:
        if model not in RATER_MODELS:
            raise ValueError(f"unknown rater_model {model!r}; expected one of {RATER_MODELS}")
        stars = np.asarray(star_values, np.float64)
        if stars.ndim != 1 or len(stars) < 2 or not (np.diff(stars) > 0).all():
            raise ValueError(f"star_values={star_values!r}; expected at least two increasing star values")
        self.model, self.stars = model, stars
        self.users = np.zeros(capacity, np.int64)
        self.items = np.zeros(capacity, np.int64)
        self.ratings = np.zeros(capacity)
        self.weights = np.zeros(capacity)  # a_n; 0 in an empty or forgotten slot
        self.logged, self.fitted_at = 0, 0
        self.mean, self.pooled, self.bias_variance, self.spam_prior = float(stars.mean()), 1.0, 0.1, 0.05
        self.consensus = np.full(num_items, self.mean)
        self.bias = np.zeros(num_users)
        self.variance = np.ones(num_users)
        self.spam = np.full(num_users, self.spam_prior if self.reliable else 0.0)
        self.rated = np.zeros(num_users)

    @property
    def reliable(self) -> bool:
        return self.model == "reliability"

    # ------------------------------------------------------------------ learning

    def observe(self, users: np.ndarray, items: np.ndarray, stars: np.ndarray, weight: np.ndarray | None = None):
        """Log ratings ``stars`` ``(n,)`` of ``users`` ``(n,)`` on ``items`` ``(n,)``, each with weight ``(n,)``
        in [0, 1] (default 1); :meth:`fit` when the log has grown enough."""
        n = len(stars)
        if not n:
            return
        slots = (self.logged + np.arange(n)) % len(self.ratings)
        self.users[slots], self.items[slots], self.ratings[slots] = users, items, stars
        self.weights[slots] = 1.0 if weight is None else np.clip(weight, 0.0, 1.0)
        self.logged += n
        if self.logged - self.fitted_at >= max(1.0, REFIT_GROWTH * self.fitted_at):
            self.fit()

    def forget_items(self, items: np.ndarray) -> None:
        """New items in the slots ``items``: their ratings leave the log and their consensus is the mean again."""
        self.weights[np.isin(self.items, items)] = 0.0
        self.consensus[items] = self.mean

    def fit(self, iterations: int = FIT_ITERATIONS) -> None:
        """:data:`FIT_ITERATIONS` alternating updates of every estimate over the log (module docstring)."""
        self.fitted_at = self.logged
        held = self.weights > 0
        u, i, r, a = self.users[held], self.items[held], self.ratings[held], self.weights[held]
        if not len(r):
            return
        size = len(self.bias)
        self.rated = n = np.bincount(u, a, size)
        for _ in range(iterations):
            rho = self.reliability(u) * a
            self.mean = float(np.sum(rho * (r - self.bias[u])) / max(rho.sum(), 1e-9))
            self.consensus = self._consensus(u, i, r, rho)
            if not self.reliable:
                continue
            e = r - self.consensus[i]  # each rating's offset from its item's consensus
            s1, s2 = np.bincount(u, a * e, size), np.bincount(u, a * e**2, size)
            within = np.maximum(s2 - s1**2 / np.maximum(n, 1e-9), 0.0)  # Σ a (e − ē_u)²
            self._fit_pooled(n, s1, within)
            self.bias = s1 / (n + self.pooled / self.bias_variance)
            self.variance = (VARIANCE_PRIOR * self.pooled + within) / (VARIANCE_PRIOR + np.maximum(n - 1.0, 0.0))
            self._fit_spam(n, s1, s2)

    def _consensus(self, u, i, r, rho) -> np.ndarray:
        """``μ_i`` ``(num_items,)``: the reliability-weighted mean de-biased rating, ``κ`` pseudo-ratings at ``m``."""
        size = len(self.consensus)
        total = np.bincount(i, rho * (r - self.bias[u]), size) + ITEM_PRIOR * self.mean
        return total / (np.bincount(i, rho, size) + ITEM_PRIOR)

    def _fit_pooled(self, n, s1, within) -> None:
        """``s²``, the honest users' within-user variance (one degree of freedom spent on each user's own mean), and
        ``τ²`` by the method of moments, ``Σ_u h_u (ē_u² − s²/n_u) / Σ_u h_u`` (each at least 10⁻³)."""
        seen = n > 0
        honest = (1.0 - self.spam) * seen
        freedom = np.sum(honest * np.maximum(n - 1.0, 0.0))
        if freedom > 0:
            self.pooled = max(float(np.sum(honest * within) / freedom), 1e-3)
        moments = (s1[seen] / n[seen]) ** 2 - self.pooled / n[seen]
        self.bias_variance = max(float(np.sum(honest[seen] * moments) / max(honest[seen].sum(), 1e-9)), 1e-3)

    def _fit_spam(self, n, s1, s2) -> None:
        """``P_u`` from the log-likelihood ratio of uniform ratings to honest ones, the honest user's offsets
        ``e ~ N(0, s² I + τ² 11ᵀ)`` with their bias integrated out (from ``n``, ``Σ a e``, ``Σ a e²`` per user);
        ``π`` the mean of ``P_u`` over rated users."""
        s, t = self.pooled, self.bias_variance
        joint = s + n * t
        honest_density = -0.5 * (
            n * math.log(2 * math.pi) + (n - 1.0) * math.log(s) + np.log(joint) + (s2 - t * s1**2 / joint) / s
        )
        step = float(np.min(np.diff(self.stars)))
        ratio = n * (math.log(1.0 / len(self.stars)) - math.log(step)) - honest_density
        prior = math.log(self.spam_prior / (1 - self.spam_prior))
        self.spam = 1.0 / (1.0 + np.exp(-np.clip(prior + ratio, -50.0, 50.0)))
        seen = n > 0
        self.spam_prior = float(np.clip(self.spam[seen].mean(), 1e-3, 0.5)) if seen.any() else self.spam_prior

    # ------------------------------------------------------------------ using it

    def reliability(self, users: np.ndarray) -> np.ndarray:
        """``ρ_u`` ``(n,)`` in [0, 1] of ``users`` ``(n,)`` (1 under ``naive``)."""
        if not self.reliable:
            return np.ones(len(users))
        return (1.0 - self.spam[users]) * np.minimum(1.0, self.pooled / self.variance[users])

    def debias(self, users: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """``r − b_u`` ``(...)`` of ratings ``stars`` by ``users`` (same shape)."""
        return stars - self.bias[users]

    def personalise(self, users: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """A de-biased prediction ``stars`` for ``users`` (same shape) in the user's own terms: ``f + b_u``,
        clipped to the scale."""
        return np.clip(stars + self.bias[users], self.stars[0], self.stars[-1])

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``μ_i + b_u`` ``(...)`` for ``users`` and ``items`` (same shape), clipped to the scale."""
        return self.personalise(users, self.consensus[items])

    def clean(self, users: np.ndarray, items: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """``ρ_u (r − b_u) + (1 − ρ_u) μ_i`` ``(n,)``: each rating de-biased and shrunk toward the item's consensus as
        far as its rater is unreliable (the rating itself under ``naive``)."""
        if not self.reliable:
            return np.asarray(stars, np.float64)
        rho = self.reliability(users)
        return rho * self.debias(users, stars) + (1.0 - rho) * self.consensus[items]

    def clean_records(self, records: np.ndarray) -> np.ndarray:
        """A copy of feedback ``records`` whose rating values are :meth:`clean` (others as they are)."""
        out = records.copy()
        rating = np.flatnonzero((records["kind"] == Signal.RATING) & (records["value"] > 0))
        r = records[rating]
        out["value"][rating] = self.clean(r["user_id"].astype(np.int64), r["item_index"].astype(np.int64), r["value"])
        return out

    def spam_scores(self) -> np.ndarray | None:
        """``(num_users,)`` ``P_u`` where the user has rated, NaN elsewhere; None under ``naive`` (no spam model)."""
        if not self.reliable:
            return None
        return np.where(self.rated > 0, self.spam, np.nan)

    def flagged(self) -> np.ndarray:
        """``(num_users,)`` bool: suspected spam raters (``P_u > 1/2``)."""
        return self.spam > 0.5

    # ------------------------------------------------------------------ persistence

    NAMES = ("users", "items", "ratings", "weights", "consensus", "bias", "variance", "spam", "rated")
    SCALARS = ("logged", "fitted_at", "mean", "pooled", "bias_variance", "spam_prior")

    def state_dict(self) -> dict:
        return {**{n: getattr(self, n) for n in self.NAMES}, **{n: getattr(self, n) for n in self.SCALARS}}

    def load_state_dict(self, state) -> None:
        for name in self.NAMES:
            setattr(self, name, np.array(state[name]))
        for name in self.SCALARS:
            setattr(self, name, state[name])


def rating_records(records: np.ndarray) -> np.ndarray:
    """The records ``(n,)`` of ``records`` that carry stars (kind rating, value > 0: a private "not rated" report is
    0)."""
    return records[(records["kind"] == Signal.RATING) & (records["value"] > 0)]
