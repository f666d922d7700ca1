"""What a learner does with unreliable feedback: ``rater_model=naive|reliability``.

``naive`` takes every record as it comes. ``reliability`` (one switch for the BERT agent and the linear bandits):

- keeps a rater model (:class:`agents.raters.Raters`: per-user bias, reliability, spam) of the ratings it
  trains on; the rating head trains on de-biased ratings weighted by their rater's reliability (optionally with a
  Huber loss, :func:`rating_head_loss`), predicts in each user's own terms, and a learner that needs one number per
  rating (a bandit's credit) gets the rating shrunk toward the item's consensus;
- on locally private feedback, learns the mechanism from the world's public settings
  (:class:`agents.private_feedback.ReportMechanism`) and replaces every report by its estimate
  (``private_estimate``: the posterior mean under population priors learnt from the reports, or the unbiased
  estimate) where feedback is aggregated (item statistics, credit) and labelled (the click and value labels);
  private rating reports enter the rater model weighted by the posterior chance that the user rated, under the
  category shares estimated without bias from all rating reports so far, each as the posterior mean of the stars
  given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agents.private_feedback import PRIVATE_ESTIMATES, ReportMechanism, ReportStatistics
from agents.raters import RATER_MODELS, Raters, rating_records
from envs.signals import RatingScale
from models.features import feedback_value
from models.network import HEADS, head_losses

RATING_LOSSES = ("squared", "huber")
HUBER_DELTA = 0.5
"""The Huber loss's switch from quadratic to linear, in the rating head's units (2 stars): 1 star."""


class RaterFeedback:
    """The rater model and the privacy mechanism of one learner serving ``num_users`` users and ``num_items``
    items; :meth:`attach` reads the world's public settings.

    Args:
        model: ``"naive"`` or ``"reliability"``.
        private_estimate: ``"posterior"`` or ``"unbiased"``: what replaces a private report under
            ``reliability`` (:mod:`agents.private_feedback`).
    """

    def __init__(self, model: str, num_users: int, num_items: int, private_estimate: str = "posterior") -> None:
        if model not in RATER_MODELS:
            raise ValueError(f"unknown rater_model {model!r}; expected one of {RATER_MODELS}")
        if private_estimate not in PRIVATE_ESTIMATES:
            raise ValueError(f"unknown private_estimate {private_estimate!r}; expected one of {PRIVATE_ESTIMATES}")
        self.model, self.num_users, self.num_items = model, num_users, num_items
        self.private_estimate = private_estimate
        self.raters = Raters(model, num_users, num_items, RatingScale.of_signal().stars())
        self.mechanism: ReportMechanism | None = None
        self.reports = ReportStatistics(len(self.raters.stars) + 1)  # the population's private reports

    @property
    def reliable(self) -> bool:
        return self.model == "reliability"

    def attach(self, env) -> None:
        """Learn the world's rating scale and, under ``reliability``, its privacy mechanism (public settings)."""
        stars = env.unwrapped.sim.rating_scale.stars()
        if not np.array_equal(stars, self.raters.stars):
            if self.raters.logged:
                learnt = self.raters.stars.tolist()
                raise ValueError(f"the world rates on {stars.tolist()}; expected the scale it learnt, {learnt}")
            self.raters = Raters(self.model, self.num_users, self.num_items, stars)
            self.reports = ReportStatistics(len(stars) + 1)
        self.mechanism = ReportMechanism.of(env) if self.reliable else None

    def forget_items(self, items: np.ndarray) -> None:
        """New items in the slots ``items`` ``(n,)``: the rater model forgets their ratings."""
        self.raters.forget_items(items)

    # ------------------------------------------------------------------ learning

    def observe(self, records: np.ndarray) -> None:
        """Log the ratings among arrived training ``records`` in the rater model (under privacy, each report of
        stars as the posterior mean of the stars given, weighted by the posterior chance that the user rated:
        :meth:`agents.private_feedback.ReportMechanism.posterior_stars`)."""
        rated = rating_records(records)
        stars, weight = rated["value"].astype(np.float64), None
        if self.mechanism is not None:
            self.reports.observe(self.mechanism, records)
            weight, stars = self.mechanism.posterior_stars(stars, self.mechanism.shares(self.reports.categories))
        users, items = rated["user_id"].astype(np.int64), rated["item_index"].astype(np.int64)
        self.raters.observe(users, items, stars, weight)

    def credit_records(self, records: np.ndarray) -> np.ndarray:
        """``records`` as a learner should aggregate them: the estimates of private reports, or ratings
        de-biased and shrunk by reliability (:meth:`agents.raters.Raters.clean`); as they are under ``naive``."""
        if not self.reliable:
            return records
        if self.mechanism is not None:
            return self.mechanism.estimated_records(records, self.private_estimate, self.reports)
        return self.raters.clean_records(records)

    def labels(self, labels: dict, values: np.ndarray, arrived: np.ndarray, worth: np.ndarray) -> dict:
        """:func:`models.features.slate_labels` of private reports ``values`` ``(N, K, S)`` as estimates
        (``private_estimate``): ``click`` the consumption estimate and ``value`` the estimated credit of the item's
        reports (every shown item reports, so ``value`` is the credit per shown item); as they are without a
        mechanism. ``depth`` is left
        unlabelled under a mechanism: the depth head learns the depth *of a consumed item*, and every shown item
        sends a noisy depth report, so no report says which depths belong to consumed items (the clipped
        "depth" of a report on an unconsumed item is noise, not a label)."""
        if self.mechanism is None:
            return labels
        kinds = np.arange(values.shape[-1])
        estimate = self.mechanism.estimated_values(values, kinds, self.private_estimate, self.reports)
        return {
            **labels,
            "click": estimate[..., self.mechanism.consumption_kind()].astype(np.float32),
            "value": feedback_value(estimate, arrived, worth),
            "depth_mask": np.zeros_like(labels["depth_mask"]),
        }

    def rating_labels(self, labels: dict, users: np.ndarray) -> tuple[dict, torch.Tensor | None]:
        """Rating labels ``(N, K)`` (tensors) of slates shown to ``users`` ``(N,)`` for the rating head: only real
        stars (a private "not rated" report is no rating), de-biased under ``reliability``, with the raters'
        reliability as weights (None under ``naive``). Under a privacy mechanism each report of stars enters as
        the rater model takes it (:meth:`observe`): the posterior mean of the stars given, weighted also by the
        posterior chance that the user rated at all (every shown item reports a rating category, most of them
        from items never rated)."""
        rating, mask = labels["rating"], labels["rating_mask"] & (labels["rating"] > 0)
        if not self.reliable:
            return {**labels, "rating_mask": mask}, None
        who = np.broadcast_to(users[:, None], rating.shape)
        stars = rating.cpu().numpy().astype(np.float64)
        weights = self.raters.reliability(who.ravel()).reshape(rating.shape)
        if self.mechanism is not None:
            shares = self.mechanism.shares(self.reports.categories)
            chance, posterior = self.mechanism.posterior_stars(stars.ravel(), shares)
            stars = np.where(stars > 0, posterior.reshape(stars.shape), 0.0)
            weights = weights * chance.reshape(stars.shape)
        stars = self.raters.debias(who, stars)
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=rating.device)  # noqa: E731
        return {**labels, "rating": as_tensor(stars), "rating_mask": mask}, as_tensor(weights)

    @property
    def mean_rating(self) -> float | None:
        """The raters' population mean of de-biased ratings (None under ``naive`` or before any rating)."""
        return self.raters.mean if self.reliable and self.raters.logged else None

    # ------------------------------------------------------------------ using it

    def personalise(self, users: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """Predicted stars ``(B, k)`` for ``users`` ``(B,)`` in each user's own terms (``+ b_u``; as they are under
        ``naive``)."""
        if not self.reliable:
            return stars
        return self.raters.personalise(np.broadcast_to(users[:, None], stars.shape), stars)

    def spam_scores(self) -> np.ndarray | None:
        """See :meth:`agents.raters.Raters.spam_scores`."""
        return self.raters.spam_scores()

    def state_dict(self) -> dict:
        return {"raters": self.raters.state_dict(), "reports": self.reports.state_dict()}

    def load_state_dict(self, state) -> None:
        self.raters.load_state_dict(state["raters"])
        self.reports.load_state_dict(state["reports"])


def rating_head_loss(
    outputs: torch.Tensor, labels: dict, center: float, weights: torch.Tensor | None, loss: str
) -> torch.Tensor:
    """The rating head's masked mean loss from outputs ``(N, K, len(HEADS))``: ``squared`` as
    :func:`models.network.head_losses`, or ``huber`` (Huber, *Robust estimation of a location parameter*, Ann.
    Math. Statist. 1964: ``½ d²`` for ``|d| ≤ δ``, ``δ (|d| − ½ δ)`` beyond, :data:`HUBER_DELTA`), which bounds the
    pull of a wild rating. ``weights`` ``(N, K)`` multiply each item's loss."""
    if loss not in RATING_LOSSES:
        raise ValueError(f"unknown rating_loss {loss!r}; expected one of {RATING_LOSSES}")
    if loss == "squared":
        return head_losses(outputs, labels, 1.0, center, weights)["rating"]
    target = (labels["rating"] - center) / 2.0
    per_item = F.huber_loss(outputs[..., HEADS.index("rating")], target, reduction="none", delta=HUBER_DELTA)
    mask = labels["rating_mask"].float()
    weighted = mask if weights is None else mask * weights
    return (per_item * weighted).sum() / mask.sum().clamp_min(1.0)
