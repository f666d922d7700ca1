"""Unbiased estimates from locally private feedback (the mechanisms of :mod:`envs.privacy`).

Under ``privacy_epsilon = ε`` every shown item sends ``S + 1`` reports (its ``S`` implicit signals and its rating),
each privatised with ``ε_r = ε / (S + 1)``. ``ε`` and the domain's signals are public parameters of the mechanism
(a learner must know them to read the reports at all; :meth:`ReportMechanism.of` reads them from the environment's
settings, never from hidden state). From them:

- **Binary signal, randomised response** (Warner, JASA 1965): the true bit ``x`` is kept with probability
  ``p = e^ε_r / (1 + e^ε_r)``, flipped with ``q = 1 − p``, so ``E[y] = q + (p − q) x`` and
  ``x̂ = (y − q) / (p − q)`` is unbiased for ``x``. Because the logistic loss is linear in its target, training on
  ``x̂`` gives an unbiased estimate of the clean loss and of its gradient (Natarajan, Dhillon, Ravikumar & Tewari,
  *Learning with noisy labels*, NeurIPS 2013, Lemma 1); the price is variance: ``Var x̂ = p q / (p − q)²``.
- **Numeric signal, Laplace**: the report is the value clipped into the signal's range plus zero-mean noise, so it
  is already unbiased for the *clipped* value, and kept as it is. It is not unbiased for the value itself when the
  value falls outside the declared range (the clipping bias ``E[clip(v)] − E[v]``); the declared ranges are chosen
  to hold the simulator's values, so this bias is 0 here, but not in general.
- **Rating, K-ary randomised response** (Kairouz, Oh & Viswanath, JMLR 2016; frequency estimation as in Wang,
  Blocki, Li & Jha, *Locally differentially private protocols for frequency estimation*, USENIX Security 2017,
  §4.1): the category ``x`` (0: not rated, ``c ≥ 1``: the ``c``-th star value) is kept with
  ``p = e^ε_r / (e^ε_r + K − 1)``, else replaced by each other category with ``q = 1 / (e^ε_r + K − 1)``. For any
  function ``g`` of the category, ``E[g(y)] = q Σ_c g(c) + (p − q) g(x)``, so ``ĝ = (g(y) − q Σ_c g(c)) / (p − q)``
  is unbiased for ``g(x)``; with ``g(c) = (stars(c) − neutral) · [c ≥ 1]`` it is the rating's reward credit, and
  with indicators the category frequencies (they sum to 1 exactly, since ``p + (K − 1) q = 1``).
- **Text** (reviews, comments) is written from the *private* rating by the user's own habit, which is no parameter
  of the mechanism: text reports are left as they are.

What is unbiased is each estimate; ratios of them (a mean rating among rated items, a posterior) are consistent, not
unbiased.

Unbiased is not the same as useful: at ``ε_r = 1`` a reported bit's estimate is ``−0.58`` or ``1.58`` (variance
0.92 against at most 0.25 for the clean bit) and a rating report's credit ``±4.6`` stars on items never rated, so a
learner's credit is mostly the noise of the signals that carry little reward. :meth:`ReportMechanism.posterior_values`
gives each report's **posterior mean** instead, under population priors estimated without bias from all reports so
far (:class:`ReportStatistics`): ``E[x | y] = π p / (π p + (1 − π) q)`` for a reported 1 and ``π q / (π q + (1 − π)
p)`` for a 0 (``π`` the signal's base rate); for a Laplace report the linear minimum-mean-square-error estimate
``m + k (y − m)``, ``k = τ² / (τ² + 2 b²)`` (``m`` and ``τ² = Var y − 2 b²`` the clipped value's mean and variance,
``b`` the noise scale; the best linear predictor of ``x`` from ``y``); for a rating report ``Σ_c g(c) P(c | y)``.
Each is biased toward the population's mean, by as much as its report is noisy: a signal whose reports say little
is credited little (the Bayes estimate under squared loss). ``private_estimate=posterior`` (the default) uses them
where a learner aggregates and labels feedback, ``unbiased`` the estimators above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.privacy import report_epsilon
from envs.signals import SIGNALS, Role, Signal

PRIVATE_ESTIMATES = ("posterior", "unbiased")
SHARE_PRIOR = 60.0
"""Pseudo-observations of the uniform prior in :func:`shrunk_shares`."""


@dataclass(frozen=True)
class ReportMechanism:
    """The public parameters of a world's local-privacy mechanism.

    Attributes:
        epsilon: ``ε_r``, the budget of one report (> 0).
        signals: the kinds of the domain's implicit signals (each shown item reports each of them).
        star_values: ``(K − 1,)`` the rating scale's star values, lowest first (category ``c`` is
            ``star_values[c − 1]``; category 0 is "not rated").
    """

    epsilon: float
    signals: tuple[int, ...]
    star_values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon={self.epsilon!r}; expected a finite report budget > 0")
        if not self.star_values:
            raise ValueError("star_values is empty; expected the rating scale's star values")

    @classmethod
    def of(cls, env) -> ReportMechanism | None:
        """The mechanism of (vector) ``env`` from its public settings (``privacy_epsilon``, the domain's signals and
        rating scale), or None when its feedback is not privatised."""
        sim = env.unwrapped.sim
        if sim.config.privacy_epsilon is None:
            return None
        signals = tuple(int(s) for s in sim.domain.implicit_signals)
        stars = tuple(sim.rating_scale.stars().tolist())
        return cls(report_epsilon(sim.config.privacy_epsilon, len(signals) + 1), signals, stars)

    # ------------------------------------------------------------------ the mechanisms' probabilities

    @property
    def categories(self) -> int:
        """``K``: not rated, and each star value."""
        return len(self.star_values) + 1

    @property
    def bit_keep(self) -> float:
        """``p`` of binary randomised response."""
        return math.exp(self.epsilon) / (1.0 + math.exp(self.epsilon))

    @property
    def category_keep(self) -> float:
        """``p`` of ``K``-ary randomised response."""
        return math.exp(self.epsilon) / (math.exp(self.epsilon) + self.categories - 1)

    @property
    def category_other(self) -> float:
        """``q``: the chance of each particular other category."""
        return 1.0 / (math.exp(self.epsilon) + self.categories - 1)

    # ------------------------------------------------------------------ estimators

    def unbiased_bits(self, reported: np.ndarray) -> np.ndarray:
        """``x̂ = (y − q) / (p − q)`` of reported bits ``y`` (any shape): unbiased for the true bits."""
        p = self.bit_keep
        return (np.asarray(reported, np.float64) - (1.0 - p)) / (2.0 * p - 1.0)

    def category(self, stars: np.ndarray) -> np.ndarray:
        """The category ``(n,)`` of reported rating values (0: not rated)."""
        stars = np.asarray(stars, np.float64)
        values = np.asarray(self.star_values)
        step = values[1] - values[0] if len(values) > 1 else 1.0
        category = 1 + np.rint((stars - values[0]) / step).astype(np.int64)
        return np.where(stars == 0, 0, np.clip(category, 1, len(values)))

    def unbiased_of_category(self, reported: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``ĝ = (g(y) − q Σ_c g(c)) / (p − q)`` for categories ``y`` ``(n,)`` and ``g`` ``(K,)`` the function's value
        per category: unbiased for ``g`` of the true categories."""
        p, q = self.category_keep, self.category_other
        return (g[reported] - q * g.sum()) / (p - q)

    def rating_credit(self, stars: np.ndarray) -> np.ndarray:
        """Unbiased estimate ``(n,)`` of ``(stars − neutral) · [rated]`` (the rating's reward credit per unit weight,
        0 for an item that was not rated) from reported rating values ``(n,)``."""
        neutral = float(SIGNALS.neutral[Signal.RATING])
        g = np.concatenate([[0.0], np.asarray(self.star_values) - neutral])
        return self.unbiased_of_category(self.category(stars), g)

    def frequencies(self, counts: np.ndarray) -> np.ndarray:
        """Unbiased estimate ``(K,)`` of the true categories' shares from the counts ``(K,)`` of reported ones:
        ``(f_c − q) / (p − q)`` with ``f`` the reported shares (may leave [0, 1]; sums to 1)."""
        return frequencies(counts, self.category_keep, self.category_other)

    def shares(self, counts: np.ndarray, pseudo: float = SHARE_PRIOR) -> np.ndarray:
        """A prior ``(K,)`` of the true rating categories from the counts ``(K,)`` of reported ones
        (:func:`shrunk_shares`)."""
        return shrunk_shares(counts, self.category_keep, self.category_other, pseudo)

    def posterior_stars(self, stars: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For reported rating values ``stars`` ``(n,)`` under the category prior ``prior`` ``(K,)`` (e.g.
        :meth:`shares`): ``P(x ≥ 1 | y)`` ``(n,)``, the posterior chance that the
        user rated at all, and ``E[stars(x) | y, x ≥ 1]`` ``(n,)``, the posterior mean of the stars they gave (Bayes'
        rule with the likelihood ``P(y | x) = p`` if ``y = x`` else ``q``). Not unbiased: the Bayes estimate under the
        population's shares, which at small ``ε`` stays near the population's mean rating, as it should."""
        prior = np.clip(np.asarray(prior, np.float64), 1e-9, None)
        prior = prior / prior.sum()
        likelihood = np.full((len(stars), self.categories), self.category_other)
        likelihood[np.arange(len(stars)), self.category(stars)] = self.category_keep
        joint = likelihood * prior  # (n, K) ∝ P(x | y)
        rated = joint[:, 1:].sum(1)
        mean = joint[:, 1:] @ np.asarray(self.star_values) / np.maximum(rated, 1e-300)
        return rated / joint.sum(1), mean

    def unbiased_values(self, values: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """Reported ``values`` of signal ``kinds`` (broadcastable) re-expressed so that ``value − neutral`` is an
        unbiased estimate of the clean record's: binary implicit signals by :meth:`unbiased_bits`, numeric ones as
        they are (Laplace), the rating as ``neutral + ĝ`` (:meth:`rating_credit`), anything else as it is."""
        values = np.asarray(values, np.float64)
        kinds = np.broadcast_to(kinds, values.shape)
        out = values.copy()
        bits = np.isin(kinds, self.signals) & SIGNALS.binary[kinds]
        out[bits] = self.unbiased_bits(values[bits])
        rating = kinds == Signal.RATING
        out[rating] = SIGNALS.neutral[Signal.RATING] + self.rating_credit(values[rating])
        return out

    def unbiased_records(self, records: np.ndarray) -> np.ndarray:
        """A copy of feedback ``records`` with :meth:`unbiased_values` for values (a record's credit
        ``weight · (value − neutral)`` is then unbiased for the clean record's, 0 where no clean record exists)."""
        out = records.copy()
        out["value"] = self.unbiased_values(records["value"], records["kind"].astype(np.int64))
        return out

    def bit_posterior(self, reported: np.ndarray, base_rate: float) -> np.ndarray:
        """``E[x | y]`` ``(...)`` of reported bits ``y`` (any shape) when a true bit is 1 with chance ``base_rate``."""
        p, q, pi = self.bit_keep, 1.0 - self.bit_keep, base_rate
        one, zero = pi * p / (pi * p + (1 - pi) * q), pi * q / (pi * q + (1 - pi) * p)
        return np.where(np.asarray(reported) > 0.5, one, zero)

    def laplace_scale(self, kind: int) -> float:
        """``b`` of a numeric signal's Laplace noise: its range over ``ε_r`` (:func:`envs.privacy.laplace_report`)."""
        return float(SIGNALS.high[kind] - SIGNALS.low[kind]) / self.epsilon

    def posterior_values(self, values: np.ndarray, kinds: np.ndarray, statistics: ReportStatistics) -> np.ndarray:
        """Reported ``values`` of signal ``kinds`` (broadcastable) re-expressed so that ``value − neutral`` is the
        posterior mean of the clean record's (module docstring), under the population priors ``statistics``;
        anything else as it is."""
        values = np.asarray(values, np.float64)
        kinds = np.broadcast_to(kinds, values.shape)
        out = values.copy()
        for kind in self.signals:
            at = kinds == kind
            if SIGNALS.binary[kind]:
                out[at] = self.bit_posterior(values[at], statistics.base_rate(kind, self))
            else:
                mean, gain = statistics.linear_estimate(kind, self.laplace_scale(kind))
                out[at] = mean + gain * (values[at] - mean)
        rating = kinds == Signal.RATING
        rated, stars = self.posterior_stars(values[rating], self.shares(statistics.categories))
        neutral = SIGNALS.neutral[Signal.RATING]
        out[rating] = neutral + rated * (stars - neutral)
        return out

    def estimated_records(self, records: np.ndarray, estimate: str, statistics: ReportStatistics) -> np.ndarray:
        """A copy of feedback ``records`` with each value replaced by its ``estimate`` (``"posterior"``:
        :meth:`posterior_values`, ``"unbiased"``: :meth:`unbiased_values`)."""
        out = records.copy()
        out["value"] = self.estimated_values(records["value"], records["kind"].astype(np.int64), estimate, statistics)
        return out

    def estimated_values(self, values, kinds, estimate: str, statistics: ReportStatistics) -> np.ndarray:
        """:meth:`posterior_values` or :meth:`unbiased_values` of ``values`` of ``kinds``, as ``estimate`` says."""
        if estimate not in PRIVATE_ESTIMATES:
            raise ValueError(f"unknown private_estimate {estimate!r}; expected one of {PRIVATE_ESTIMATES}")
        if estimate == "unbiased":
            return self.unbiased_values(values, kinds)
        return self.posterior_values(values, kinds, statistics)

    def consumption_kind(self) -> int:
        """The domain's consumption signal (click or play)."""
        kinds = [k for k in self.signals if k in SIGNALS.with_role(Role.CONSUMPTION)]
        if not kinds:
            raise ValueError(f"signals {self.signals} hold no consumption signal; expected one (click or play)")
        return kinds[0]


def frequencies(counts: np.ndarray, keep: float, other: float) -> np.ndarray:
    """Unbiased estimate ``(K,)`` of the true categories' shares from the counts ``(K,)`` of categories reported by
    randomised response that keeps a category with chance ``keep`` and reports each other one with ``other``:
    ``(f_c − q) / (p − q)`` with ``f`` the reported shares (may leave [0, 1]; sums to 1)."""
    counts = np.asarray(counts, np.float64)
    return (counts / max(counts.sum(), 1.0) - other) / (keep - other)


def shrunk_shares(counts: np.ndarray, keep: float, other: float, pseudo: float = SHARE_PRIOR) -> np.ndarray:
    """A prior ``(K,)`` of the true categories from the counts ``(K,)`` of reported ones: :func:`frequencies`
    clipped at 0 and renormalised, blended with uniform shares as a Dirichlet prior worth ``pseudo`` clean
    observations would be, the reports counting as ``n (p − q)²`` clean ones (a report moves a category's share
    estimate by ``1 / (p − q)`` of what a clean observation would, at ``(p − q)⁻²`` times the variance). Not
    unbiased (a shrinkage estimate); it keeps a posterior from trusting shares that few reports can tell apart."""
    counts = np.asarray(counts, np.float64)
    estimate = np.clip(frequencies(counts, keep, other), 0.0, None)
    estimate = estimate / estimate.sum() if estimate.sum() > 0 else np.full(len(counts), 1.0 / len(counts))
    information = counts.sum() * (keep - other) ** 2
    return (information * estimate + pseudo / len(counts)) / (information + pseudo)


class ReportStatistics:
    """The population statistics of a mechanism's reports that its posterior needs, per signal kind: the counts
    of reported 0s and 1s of binary signals, ``n``, ``Σ y`` and ``Σ y²`` of numeric ones, and the counts of
    reported rating categories.

    Args:
        categories: ``K``, the rating report's categories (not rated, then each star value).
    """

    def __init__(self, categories: int) -> None:
        self.bits = np.zeros((SIGNALS.count, 2))
        self.moments = np.zeros((SIGNALS.count, 3))
        self.categories = np.zeros(categories)

    def observe(self, mechanism: ReportMechanism, records: np.ndarray) -> None:
        """Count the reports among ``records`` ``(n,)``."""
        kinds, values = records["kind"].astype(np.int64), records["value"].astype(np.float64)
        implicit = np.isin(kinds, mechanism.signals)
        binary, numeric = implicit & SIGNALS.binary[kinds], implicit & ~SIGNALS.binary[kinds]
        np.add.at(self.bits, (kinds[binary], (values[binary] > 0.5).astype(np.int64)), 1.0)
        y = values[numeric]
        np.add.at(self.moments, kinds[numeric], np.stack([np.ones_like(y), y, y**2], axis=1))
        rated = kinds == Signal.RATING
        self.categories += np.bincount(mechanism.category(values[rated]), minlength=len(self.categories))

    def base_rate(self, kind: int, mechanism: ReportMechanism) -> float:
        """The prior chance that a true bit of ``kind`` is 1: :func:`shrunk_shares` of its reports."""
        return float(shrunk_shares(self.bits[kind], mechanism.bit_keep, 1.0 - mechanism.bit_keep)[1])

    def linear_estimate(self, kind: int, scale: float) -> tuple[float, float]:
        """``(m, k)`` of numeric ``kind``'s linear estimate ``m + k (y − m)`` under Laplace noise of scale
        ``scale``: ``m`` the mean report (0 before any), ``k = τ² / Var y`` with ``τ² = max(Var y − 2 b², 0)``
        (0 before two reports)."""
        n, total, squares = self.moments[kind]
        if n < 2:
            return (total / n if n else 0.0), 0.0
        mean = total / n
        spread = squares / n - mean**2
        signal = max(spread - 2.0 * scale**2, 0.0)
        return mean, (signal / spread if spread > 0 else 0.0)

    def state_dict(self) -> dict:
        return {"bits": self.bits, "moments": self.moments, "categories": self.categories}

    def load_state_dict(self, state) -> None:
        self.bits, self.moments, self.categories = (np.array(state[k]) for k in ("bits", "moments", "categories"))
