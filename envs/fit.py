"""Fitting the simulator's rating model to real ratings: matrix factorisation over the genre structure.

A simulated user who consumes an item rates it ``clip(round(1 + 4·σ(1.5·x + 0.3·ε) + σ_r·ε'), 1, 5)``
(:mod:`envs.dynamics`; ε, ε' standard normal, σ_r the ``rating_noise``), where ``x`` is the item's utility
minus the user's no-click utility; on a rating scale ``low .. high`` in steps of ``step``
(:class:`envs.signals.RatingScale`, e.g. MovieLens' half stars) ``low + (high − low)·σ(...)`` rounded to the step.
Every formula below is on the fit's scale (1..5 whole stars unless given). :func:`fit_rating_model` fits

    x_ui = b_u + β_i + q_u · g_i,        g_i = (1 − w_i)·e[primary_i] + w_i·e[secondary_i]

— a user bias ``b_u``, an item bias ``β_i`` and the user's genre affinities ``q_u`` ``(T,)`` over the item's
fixed genre mixture ``g_i`` — in two stages:

1. On the training fold, regularised least squares of the expected rating ``1 + 4·σ(1.5·x)`` against the
   real rating (on the 1..5 scale), by alternating Gauss–Newton steps: one ``(T+1)``-dimensional solve per
   user (``q_u``, ``b_u``), one scalar step per item (``β_i``). ``q_u`` shrinks toward the population's
   genre means, ``b_u`` and ``β_i`` toward 0.
2. On the validation fold, two scalars: a dispersion ``a`` (``x ← a·x``, undoing the shrinkage that makes
   regularised estimates under-dispersed) and the rating noise ``σ_r``, chosen so that the model's expected
   star histogram matches the real one (least total-variation distance).

The held-out fold is left for the realism report. In simulator terms a user's topic affinity is
``a·(b_u + q_u)`` and an item's quality term ``a·β_i`` (see :meth:`RatingFit.latent`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, ndtr

from envs.dynamics import SATISFACTION_NOISE as INNER_NOISE
from envs.dynamics import SATISFACTION_SLOPE as SLOPE
from envs.signals import RatingScale

WHOLE_STARS = RatingScale(1.0, 5.0, 1.0)

LAMBDA_GENRE, LAMBDA_USER, LAMBDA_ITEM = 3.0, 1.0, 1.0  # ridge penalties, in squared stars
MAX_SWEEPS, TOLERANCE = 30, 1e-3  # alternating steps; stop when the loss improves by less (relative)
HERMITE_NODES = 5  # quadrature over the satisfaction noise ε
NODES, NODE_WEIGHTS = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
NODE_WEIGHTS = NODE_WEIGHTS / NODE_WEIGHTS.sum()


@dataclass(frozen=True)
class GenreMixture:
    """Each item's two hidden topics and the weight of the second.

    Attributes:
        topic: ``(N,)`` int primary topic in ``[0, num_topics)``.
        secondary: ``(N,)`` int secondary topic.
        weight: ``(N,)`` float share of the secondary topic, in [0, 1).
        num_topics: ``T``.
    """

    topic: np.ndarray
    secondary: np.ndarray
    weight: np.ndarray
    num_topics: int


@dataclass(frozen=True)
class RatingFit:
    """The fitted rating model in simulator units.

    Attributes:
        affinity: ``(U, T)`` float32 utility of each topic relative to the user's no-click option.
        item_utility: ``(N,)`` float32 utility every user gets from the item itself (quality term).
        mixture: the items' genre structure the fit used.
        rating_noise: ``σ_r``, standard deviation of rating noise in stars.
        dispersion: ``a``, the stretch applied to the least-squares estimates.
        sweeps: alternating steps taken.
        scale: the rating scale fitted.
        heaping: on a scale finer than whole stars, the chance a rating is rounded to whole stars.
    """

    affinity: np.ndarray
    item_utility: np.ndarray
    mixture: GenreMixture
    rating_noise: float
    dispersion: float
    sweeps: int
    scale: RatingScale = WHOLE_STARS
    heaping: float = 0.0

    def latent(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """``(n,)`` fitted ``x`` (utility minus no-click utility, no fatigue) of the pairs ``(user, item)``."""
        m, w = self.mixture, self.mixture.weight[item]
        genre = (1 - w) * self.affinity[user, m.topic[item]] + w * self.affinity[user, m.secondary[item]]
        return genre + self.item_utility[item]

    def star_probabilities(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """``(n, V)`` probability of each of the scale's ``V`` star values when ``user`` consumes ``item``."""
        return star_probabilities(self.latent(user, item), self.rating_noise, self.scale, self.heaping)


def star_probabilities(
    x: np.ndarray, rating_noise: float, scale: RatingScale = WHOLE_STARS, heaping: float = 0.0
) -> np.ndarray:
    """``(n, V)`` probability of each star value of ``scale`` (1..5 whole stars: ``V = 5``) for latent utilities
    ``x`` ``(n,)`` under the simulator's rating equation (Gauss–Hermite quadrature over the satisfaction noise,
    exact normal CDF for the rest): rounded to the scale's step, or with probability ``heaping`` to whole stars
    (clipped into the scale)."""
    low, high, step = scale
    mean = low + (high - low) * expit(SLOPE * np.asarray(x, dtype=np.float64)[:, None] + INNER_NOISE * NODES)
    fine = _rounded(mean, rating_noise, scale.stars()[:-1] + step / 2)  # s or less below s + step / 2
    if heaping == 0:
        return fine
    whole = np.arange(np.floor(low), np.ceil(high) + 1)  # a heaped rating is round(x), clipped into the scale
    coarse = np.zeros_like(fine)
    np.add.at(coarse.T, star_index(np.clip(whole, low, high), scale), _rounded(mean, rating_noise, whole[:-1] + 0.5).T)
    return (1 - heaping) * fine + heaping * coarse


def _rounded(mean: np.ndarray, noise: float, cuts: np.ndarray) -> np.ndarray:
    """``(n, C + 1)`` probability that ``mean`` ``(n, K)`` (per quadrature node) plus normal noise falls between
    consecutive ``cuts`` ``(C,)``, averaged over the nodes."""
    below = np.einsum("nkc,k->nc", ndtr((cuts - mean[..., None]) / noise), NODE_WEIGHTS)
    return np.diff(below, axis=1, prepend=0.0, append=1.0)


def star_index(stars: np.ndarray, scale: RatingScale = WHOLE_STARS) -> np.ndarray:
    """``(n,)`` int64 position of each of ``stars`` among the scale's star values (0 for the lowest)."""
    return np.round((np.asarray(stars, np.float64) - scale.low) / scale.step).astype(np.int64)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ``½ Σ |p − q|`` between two distributions over the same bins."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def fit_rating_model(
    user: np.ndarray,
    item: np.ndarray,
    scaled: np.ndarray,
    stars: np.ndarray,
    train: np.ndarray,
    mixture: GenreMixture,
    num_users: int,
    scale: RatingScale = WHOLE_STARS,
) -> RatingFit:
    """Fit on the ratings where ``train`` is True, calibrate on the rest.

    Args:
        user, item: ``(n,)`` int indices of each rating's user and item.
        scaled: ``(n,)`` ratings on the continuous ``scale.low .. scale.high`` range (the least-squares target).
        stars: ``(n,)`` ratings as star values of ``scale`` (the calibration target).
        train: ``(n,)`` bool, the training fold; the others are the validation fold.
        mixture: the items' genres.
        num_users: ``U``.
        scale: the rating scale (1..5 whole stars by default).
    """
    if train.all() or not train.any():
        raise ValueError("the fit needs ratings in both the training and the validation fold")
    pairs = (user[train], item[train], scaled[train], mixture, num_users, scale)
    bias, genre, item_bias, sweeps = _least_squares(*pairs)
    raw = RatingFit((bias[:, None] + genre).astype(np.float32), item_bias.astype(np.float32), mixture, 1.0, 1.0, sweeps)
    held = ~train
    x = raw.latent(user[held], item[held])
    real = np.bincount(star_index(stars[held], scale), minlength=scale.values)[: scale.values] / held.sum()
    dispersion, noise, heaping = _calibrate(x, real, scale)
    return RatingFit(
        affinity=(dispersion * raw.affinity).astype(np.float32),
        item_utility=(dispersion * raw.item_utility).astype(np.float32),
        mixture=mixture,
        rating_noise=noise,
        dispersion=dispersion,
        sweeps=sweeps,
        scale=scale,
        heaping=heaping,
    )


class _Pairs(NamedTuple):
    """The training ratings, ``(n,)`` each: user, item, target, and the item's genre weight and topics; and the
    rating scale's ``low`` and ``high - low``."""

    user: np.ndarray
    item: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    low: float
    span: float


def _least_squares(user, item, target, mixture: GenreMixture, num_users: int, scale: RatingScale):
    """Alternating Gauss–Newton for ``target ≈ low + (high − low)·σ(1.5·x)`` (1..5 stars: ``1 + 4σ(1.5·x)``) with
    the genre affinities shrunk toward the population's genre means; returns ``b (U,)``, ``q (U, T)``, ``β (N,)``
    and the sweeps taken."""
    pairs = _Pairs(
        user, item, target, mixture.weight[item], mixture.topic[item], mixture.secondary[item],
        scale.low, scale.high - scale.low,
    )  # fmt: skip
    bias, genre = np.zeros(num_users), np.zeros((num_users, mixture.num_topics))
    item_bias = np.zeros(len(mixture.topic))
    previous, sweeps = np.inf, 0
    while sweeps < MAX_SWEEPS:
        residual, _ = _residual(pairs, bias, genre, item_bias)
        loss = residual @ residual + LAMBDA_GENRE * ((genre - genre.mean(axis=0)) ** 2).sum()
        loss += LAMBDA_USER * bias @ bias + LAMBDA_ITEM * item_bias @ item_bias
        if previous - loss < TOLERANCE * loss:
            break
        previous, sweeps = loss, sweeps + 1
        bias, genre = _user_step(pairs, bias, genre, item_bias)
        item_bias = _item_step(pairs, bias, genre, item_bias)
    return bias, genre, item_bias, sweeps


def _residual(pairs: _Pairs, bias, genre, item_bias):
    """``(n,)`` prediction minus target, and ``(n,)`` the prediction's derivative in ``x``."""
    w = pairs.weight
    x = bias[pairs.user] + item_bias[pairs.item]
    x += (1 - w) * genre[pairs.user, pairs.first] + w * genre[pairs.user, pairs.second]
    s = expit(SLOPE * x)
    return pairs.low + pairs.span * s - pairs.target, pairs.span * SLOPE * s * (1 - s)


def _user_step(pairs: _Pairs, bias, genre, item_bias):
    """One Gauss–Newton step for every user's ``(q_u, b_u)`` at once (a ``(T+1)``-dimensional solve each)."""
    num_users, t = genre.shape
    residual, slope = _residual(pairs, bias, genre, item_bias)
    w, d = pairs.weight, t + 1
    features = ((pairs.first, (1 - w) * slope), (pairs.second, w * slope), (np.full_like(pairs.first, t), slope))
    gram, gradient = _user_normal_equations(pairs.user, features, residual, num_users, d)
    penalty = np.r_[np.full(t, LAMBDA_GENRE), LAMBDA_USER]
    theta = np.column_stack([genre, bias])
    gradient += penalty * (theta - np.r_[genre.mean(axis=0), 0.0])
    gram[:, np.arange(d), np.arange(d)] += penalty
    theta -= np.linalg.solve(gram, gradient[..., None])[..., 0]
    return theta[:, t], theta[:, :t]


def _item_step(pairs: _Pairs, bias, genre, item_bias):
    """One Gauss–Newton step for every item bias ``β_i`` (a scalar each)."""
    residual, slope = _residual(pairs, bias, genre, item_bias)
    n = len(item_bias)
    step = np.bincount(pairs.item, slope * residual, n) + LAMBDA_ITEM * item_bias
    return item_bias - step / (np.bincount(pairs.item, slope * slope, n) + LAMBDA_ITEM)


def _user_normal_equations(user, features, residual, num_users: int, d: int):
    """Per-user Gauss–Newton system: ``(U, d, d)`` Σ φφᵀ and ``(U, d)`` Σ φ·residual, where each
    rating's feature vector φ has the three non-zeros ``features`` = ((column, value), ...)."""
    gram = np.zeros(num_users * d * d)
    gradient = np.zeros(num_users * d)
    for column_a, value_a in features:
        gradient += np.bincount(user * d + column_a, value_a * residual, num_users * d)
        for column_b, value_b in features:
            gram += np.bincount(user * d * d + column_a * d + column_b, value_a * value_b, num_users * d * d)
    return gram.reshape(num_users, d, d), gradient.reshape(num_users, d)


def _calibrate(x: np.ndarray, real: np.ndarray, scale: RatingScale) -> tuple[float, float, float]:
    """Dispersion, rating noise and (on a scale finer than whole stars) heaping whose expected star histogram over
    ``x`` ``(n,)`` is closest (total variation) to ``real`` ``(V,)``, the share of each star value of ``scale``."""
    heaps = scale.step < 1

    def distance(params: np.ndarray) -> float:
        dispersion, noise, heaping = params if heaps else (*params, 0.0)
        if dispersion <= 0 or noise <= 0.05 or not 0 <= heaping <= 1:
            return 1.0
        return total_variation(star_probabilities(dispersion * x, noise, scale, heaping).mean(axis=0), real)

    start = np.array([1.0, 0.7, 0.5] if heaps else [1.0, 0.7])
    best = minimize(distance, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-5})
    return float(best.x[0]), float(best.x[1]), float(best.x[2]) if heaps else 0.0
