"""How well the BERT agent predicts ratings: root mean squared error on held-out impressions.

A share of impressions (``holdout_fraction``) is held out when shown: their feedback is joined but never
trains anything nor enters a user's memory, so the error on their ratings is an honest test error. It is
reported next to the error of predicting the mean training rating, the baseline a rating model must beat.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.signals import Signal
from models.replay import FeedbackReplay


def held_out_rating_errors(
    replay: FeedbackReplay, predict_stars: Callable[[np.ndarray], np.ndarray], global_rating: float
) -> dict[str, float]:
    """``rating_rmse`` (stars) of ``predict_stars(rows) -> (n, k)`` on the held-out rated items of ``replay``,
    ``rating_rmse_global_mean`` of predicting ``global_rating``, and ``rating_holdout_count``; {} before any
    held-out rating has arrived."""
    pairs = replay.rated_holdout(Signal.RATING)
    if not len(pairs):
        return {}
    rows, inverse = np.unique(pairs[:, 0], return_inverse=True)
    predicted = predict_stars(rows)[inverse, pairs[:, 1]]
    truth = replay.values[pairs[:, 0], pairs[:, 1], Signal.RATING]
    return {
        "rating_rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
        "rating_rmse_global_mean": float(np.sqrt(np.mean((global_rating - truth) ** 2))),
        "rating_holdout_count": float(len(truth)),
    }
