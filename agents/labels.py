"""Label strategies: when a shown item becomes a training example, which labels it carries, and how much it weighs.

Under delayed feedback, an impression whose feedback has not arrived looks like a negative. A label strategy
decides how a learner treats that silence. It speaks in *copies*: every impression enters training as one or
more copies, each trainable from some step on, each with labels read **as of** some step (the feedback that had
arrived by then) and a kind that its per-example weight depends on. Copies are scheduled

- when an impression is shown (:attr:`LabelStrategy.at_show`): e.g. at once, or after a waiting window;
- when a positive arrives for a shown item (:meth:`LabelStrategy.at_positive`): re-ingesting an impression whose
  label changed, as the fake-negative corrections of the delayed-feedback literature do.

A copy is *live* when its labels are whatever has arrived by the time it trains (a late positive corrects it in
place), *frozen* when they are those that had arrived when it became trainable, *negative* when every item it
covers is labelled silent whatever has arrived (the fake negative of the corrections below). A *positive* is the
arrival of a shown item's first record of the strategy's positive signal (:attr:`LabelStrategy.positive`):
``consumption`` (the default), its first feedback record of any kind (the click head's label); ``purchase``, its
first purchase record with a value > 0 (the conversion of the delayed-feedback literature, late in e-commerce).
Its *elapsed* time is the steps between showing and that arrival. The per-example weights
(:meth:`LabelStrategy.weights`) see the learner's current probability ``p`` that each covered item is positive (no
gradient flows through it), the copy's label, and the :class:`ArrivalDelays` of the positives arrived so far (the
delay model the importance-weighted corrections learn from arrived data).

The strategies, one class each (``p``: the learner's probability of a positive, ``c``: a waiting window):

==============  ========================================================================================
``oracle``      the eventual labels at once (a simulator privilege: the ceiling of every correction)
``vanilla``     a frozen copy at once: silence is a negative, never corrected
``immediate``   a live copy at once: silence is a negative until the positive corrects it in place
``wait``        a live copy after ``c`` steps
``fnw``         fake negative at once + positive copy on arrival, weights ``1 + p`` / ``(1 − p)(1 + p)``
``fnc``         the same copies, unweighted, predictions calibrated ``p = b / (1 − b)``
``es_dfm``      frozen copy after ``c`` + positive copy if it arrives later; weights from ``P(delay > c)``
``defer``       as ``es_dfm``, plus every positive duplicated and real negatives re-ingested after ``h``
==============  ========================================================================================

The learners — the BERT agent through its replay (:class:`agents.examples.ExampleLog`) and the linear bandits
through their sufficient statistics — apply the same strategies, so a strategy's effect is comparable across
learners.

Select one with ``label=<name>`` (Hydra group ``conf/label/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from envs.registry import get_domain
from envs.signals import Signal
from models.features import bought

POSITIVES = ("consumption", "purchase")
"""The positive signals a strategy may be set on (``label.positive``)."""


@dataclass(frozen=True)
class Copy:
    """One way an impression enters training.

    Attributes:
        kind: the strategy's tag of the copy (its index in :attr:`LabelStrategy.kinds`), which its weight depends on.
        delay: steps after showing (or after the positive arrived) from which the copy is trainable.
        live: True: labels as of the time it trains; False: as of the time it became trainable.
        negative: True: every covered item labelled silent (a negative), whatever has arrived.
    """

    kind: int
    delay: int
    live: bool
    negative: bool = False


class ArrivalDelays:
    """The delay model learnt from arrived data: a histogram of the elapsed steps of the positives arrived so far
    (elapsed beyond :attr:`longest` counted at :attr:`longest`).

    It is censored: a positive still on its way is not in it yet, so early in a run it sees the short delays
    first and :meth:`later_than` is low until the run is longer than the delays.
    """

    longest = 4096

    def __init__(self) -> None:
        self.counts = np.zeros(self.longest + 1, np.int64)

    def add(self, elapsed: np.ndarray) -> None:
        """Count positives that arrived ``elapsed`` ``(n,)`` steps after showing."""
        self.counts += np.bincount(np.minimum(elapsed, self.longest), minlength=self.longest + 1)

    def later_than(self, window: int) -> float:
        """``P(elapsed > window | positive)``, the share of arrived positives that came later than ``window`` (0
        before any arrived)."""
        total = self.counts.sum()
        return float(self.counts[window + 1 :].sum() / total) if total else 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_state_dict(self, state) -> None:
        self.counts[...] = state["counts"]


@dataclass(frozen=True)
class LabelStrategy:
    """Base of the label strategies; a subclass names its copies and, where they differ from 1, their weights.

    Attributes:
        positive: the signal whose arrival is a positive, one of :data:`POSITIVES` (keyword only;
            ``label.positive``).
        name: the ``label=<name>`` option.
        kinds: the names of the copies' kinds (``Copy.kind`` indexes it).
        at_show: the copies of every impression, scheduled when it is shown.
        eventual: True when the labels are the eventual ones, given by the simulator when the impression is shown
            (:attr:`agents.base.Transition.eventual`) instead of the records that arrive.
    """

    positive: str = field(default="consumption", kw_only=True)
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    eventual: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.positive not in POSITIVES:
            raise ValueError(f"label positive={self.positive!r}; expected one of {POSITIVES}")

    def check_domain(self, domain: str) -> None:
        """Refuse a ``purchase`` positive in a ``domain`` whose users buy nothing."""
        if self.positive == "purchase" and Signal.PURCHASE not in get_domain(domain).implicit_signals:
            raise ValueError(f"label.positive='purchase', but the {domain} domain has no purchase signal")

    def positive_items(self, values: np.ndarray, arrived: np.ndarray) -> np.ndarray:
        """``(n, k)`` bool: the shown items whose arrived feedback ``values``, ``arrived`` ``(n, k, S)`` holds the
        positive: any record under ``consumption``, a purchase with a value > 0 under ``purchase``."""
        return arrived.any(-1) if self.positive == "consumption" else bought(values, arrived)

    def positive_records(self, records: np.ndarray) -> np.ndarray:
        """``(E,)`` bool: which feedback ``records`` (:data:`envs.feedback.FEEDBACK_DTYPE`) are of the positive
        signal: every record under ``consumption``; under ``purchase``, purchase records with a value > 0."""
        if self.positive == "consumption":
            return np.ones(len(records), bool)
        return (records["kind"] == Signal.PURCHASE) & (records["value"] > 0)

    def at_positive(self, elapsed: np.ndarray) -> tuple[Copy, np.ndarray] | None:
        """A copy of each shown item whose first positive arrived ``elapsed`` ``(n,)`` steps after it was shown,
        and which of them ``(n,)`` bool get it; None (the default) when positives re-ingest nothing."""
        return None

    def weights(
        self, kind: np.ndarray, probability: np.ndarray, positive: np.ndarray, delays: ArrivalDelays
    ) -> np.ndarray:
        """Per-example weights ``(n, k)`` of copies of ``kind`` ``(n,)`` whose covered items are labelled
        ``positive`` ``(n, k)`` bool, given the learner's current probability ``(n, k)`` that each is positive
        (a constant: no gradient) and the delays of the arrived positives; 1 by default."""
        return np.ones_like(probability)

    def calibrate(self, biased):
        """The probability of a positive from the learner's ``biased`` one (an array or tensor of any shape); the
        identity but for strategies whose training distribution biases it (:class:`FakeNegativeCalibration`)."""
        return biased

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.name + self._on()

    def _on(self) -> str:
        """The positive signal for :meth:`describe`, when it is not the default."""
        return "" if self.positive == "consumption" else f" on {self.positive}"


def _check_steps(name: str, value: object, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"label {name}={value!r}; expected an integer >= {low} (steps)")


@dataclass(frozen=True)
class Oracle(LabelStrategy):
    """The eventual true labels at once: every record an impression will ever send is its label from the step it
    is shown (the simulator generates them then and holds the delayed ones in its channel). No deployed learner
    has them; it is the ceiling a correction is measured against, ``R = (m − vanilla) / (oracle − vanilla)``
    (Yang et al., AAAI 2021). Only the labels are the eventual ones: the features a learner reads from feedback
    (its memory of the user, item statistics) stay what has arrived."""

    name: ClassVar[str] = "oracle"
    kinds: ClassVar[tuple[str, ...]] = ("eventual",)
    eventual: ClassVar[bool] = True
    at_show: tuple[Copy, ...] = (Copy(kind=0, delay=0, live=True),)


@dataclass(frozen=True)
class Vanilla(LabelStrategy):
    """Train on an impression at once with what has arrived by then, and never correct it: silence is a negative
    for good, so every delayed positive is lost (the naive baseline of the delayed-feedback literature, e.g.
    "vanilla" in Yang et al., AAAI 2021)."""

    name: ClassVar[str] = "vanilla"
    kinds: ClassVar[tuple[str, ...]] = ("frozen",)
    at_show: tuple[Copy, ...] = (Copy(kind=0, delay=0, live=False),)


@dataclass(frozen=True)
class Wait(LabelStrategy):
    """Wait ``window`` steps, then train on the impression with its labels corrected in place as late feedback
    arrives: every record delayed up to ``window`` is in before the impression is first used, so its silence has
    become a trustworthy "not consumed"; the freshest ``window`` steps of data wait.

    Attributes:
        window: steps an impression waits before it is trainable (0 is :class:`Immediate`).
    """

    window: int = 10
    name: ClassVar[str] = "wait"
    kinds: ClassVar[tuple[str, ...]] = ("live",)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_steps("window", self.window)

    @property
    def at_show(self) -> tuple[Copy, ...]:
        return (Copy(kind=0, delay=int(self.window), live=True),)

    def describe(self) -> str:
        return f"wait(window={self.window}){self._on()}"


@dataclass(frozen=True)
class Immediate(LabelStrategy):
    """Train on an impression at once, silence counting as a negative until a late positive corrects it in place:
    the freshest data, biased toward negatives while its feedback is on the way."""

    name: ClassVar[str] = "immediate"
    kinds: ClassVar[tuple[str, ...]] = ("live",)
    at_show: tuple[Copy, ...] = (Copy(kind=0, delay=0, live=True),)


class _FakeNegatives(LabelStrategy):
    """The copies of Ktena et al. (RecSys 2019): every impression ingested at once as a negative (a *fake* one
    when its positive comes later), and duplicated as a positive when the positive arrives. The stream so built
    holds each impression once as a negative and each positive once more, so its probability of a positive is
    ``b = p / (1 + p)`` for a true ``p``."""

    kinds: ClassVar[tuple[str, ...]] = ("negative", "positive")
    at_show: tuple[Copy, ...] = (Copy(kind=0, delay=0, live=False, negative=True),)

    def at_positive(self, elapsed: np.ndarray) -> tuple[Copy, np.ndarray]:
        return Copy(kind=1, delay=0, live=True), np.ones(len(elapsed), bool)


@dataclass(frozen=True)
class FakeNegativeWeighted(_FakeNegatives):
    """FNW (Ktena et al., "Addressing Delayed Feedback for Continuous Training with Neural Networks in CTR
    prediction", RecSys 2019): the fake-negative stream, importance-weighted back to the true distribution,
    ``w⁺ = p(y=1|x) / b(y=1|x) = 1 + p`` on positives and ``w⁻ = p(y=0|x) / b(y=0|x) = (1 − p)(1 + p)`` on
    negatives, ``p`` the learner's current probability taken as a constant."""

    name: ClassVar[str] = "fnw"

    def weights(self, kind, probability, positive, delays):
        return np.where(positive, 1.0 + probability, (1.0 - probability) * (1.0 + probability))


@dataclass(frozen=True)
class FakeNegativeCalibration(_FakeNegatives):
    """FNC (Ktena et al., RecSys 2019): the fake-negative stream unweighted, so the learner estimates the biased
    ``b = p / (1 + p)``; its probability is calibrated back, ``p = b / (1 − b)`` (clipped to [0, 1])."""

    name: ClassVar[str] = "fnc"

    def calibrate(self, biased):
        return (biased / (1.0 - biased).clip(1e-6, None)).clip(0.0, 1.0)


def _delayed_positive(probability: np.ndarray, delays: ArrivalDelays, window: int) -> np.ndarray:
    """``p_dp = P(y = 1, elapsed > window | x) = p · P(elapsed > window | y = 1)``: the probability that an
    impression is a positive that arrives after the window, from the learner's ``p`` and the delay model."""
    return probability * delays.later_than(window)


@dataclass(frozen=True)
class ElapsedSampling(LabelStrategy):
    """ES-DFM (Yang et al., "Capturing Delayed Feedback in Conversion Rate Prediction via Elapsed-Time Sampling",
    AAAI 2021): wait an elapsed window ``c`` and ingest every impression with the labels arrived by then (silence a
    negative), then ingest a positive that arrives later once more, as a positive. The observed stream's
    probability of a positive is ``q(y=1|x) = p / (1 + p_dp)``, with ``p_dp = p · P(elapsed > c | y=1)`` the
    probability of a delayed positive; importance weights bring it back:
    ``w⁺ = 1 + p_dp`` and ``w⁻ = (1 + p_dp) · p_rn``, ``p_rn = (1 − p) / (1 − p + p_dp)`` the probability that an
    observed negative is a real one. The paper learns ``p_dp`` and ``p_rn`` with auxiliary classifiers; here the
    delay model is the share of arrived positives that came later than ``c`` (:class:`ArrivalDelays`, one per
    learner), times the learner's ``p``.

    Attributes:
        window: ``c``, steps an impression waits.
    """

    window: int = 10
    name: ClassVar[str] = "es_dfm"
    kinds: ClassVar[tuple[str, ...]] = ("window", "late_positive")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_steps("window", self.window)

    @property
    def at_show(self) -> tuple[Copy, ...]:
        return (Copy(kind=0, delay=int(self.window), live=False),)

    def at_positive(self, elapsed: np.ndarray) -> tuple[Copy, np.ndarray]:
        return Copy(kind=1, delay=0, live=True), elapsed > self.window

    def weights(self, kind, probability, positive, delays):
        p_dp = _delayed_positive(probability, delays, self.window)
        real_negative = (1.0 - probability) / np.maximum(1.0 - probability + p_dp, 1e-6)
        return np.where(positive, 1.0 + p_dp, (1.0 + p_dp) * real_negative)

    def describe(self) -> str:
        return f"es_dfm(window={self.window}){self._on()}"


@dataclass(frozen=True)
class RealNegatives(LabelStrategy):
    """DEFER (Gu et al., "Real Negatives Matter: Continuous Training with Real Negatives for Delayed Feedback
    Modeling", KDD 2021): as ES-DFM, every impression is ingested after the window ``c`` with the labels arrived by
    then, and every positive is ingested once more when it arrives (in the window or later); and an impression
    still without a positive at the end of the attribution window ``h`` is ingested once more as a real negative.
    Every impression is thus in the stream twice (``q(x) = p(x)``): a positive in the window as two positives, a
    delayed positive as one fake negative and one positive, a real negative as two negatives, so
    ``q(y=1|x) = p − p_dp / 2``. Importance weights: ``w⁺ = p / (p − p_dp / 2)``,
    ``w⁻ = (1 − p) / (1 − p + p_dp / 2)``, with ``p_dp = p · s``, ``s = P(elapsed > c | y=1)`` from the delay model
    as in :class:`ElapsedSampling` (so ``w⁺ = 1 / (1 − s / 2)``). A positive that arrives after ``h`` adds a third copy.

    Attributes:
        window: ``c``, steps an impression waits.
        horizon: ``h`` > ``c``, steps after which a still-silent impression is a real negative.
    """

    window: int = 10
    horizon: int = 60
    name: ClassVar[str] = "defer"
    kinds: ClassVar[tuple[str, ...]] = ("window", "positive", "real_negative")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_steps("window", self.window)
        _check_steps("horizon", self.horizon, low=int(self.window) + 1)

    @property
    def at_show(self) -> tuple[Copy, ...]:
        return (Copy(kind=0, delay=int(self.window), live=False), Copy(kind=2, delay=int(self.horizon), live=False))

    def at_positive(self, elapsed: np.ndarray) -> tuple[Copy, np.ndarray]:
        return Copy(kind=1, delay=0, live=True), np.ones(len(elapsed), bool)

    def weights(self, kind, probability, positive, delays):
        half = _delayed_positive(probability, delays, self.window) / 2.0
        w_positive = 1.0 / (1.0 - delays.later_than(self.window) / 2.0)  # p / (p − p·s/2), p cancelled
        w_negative = (1.0 - probability) / np.maximum(1.0 - probability + half, 1e-6)
        weight = np.where(positive, w_positive, w_negative)
        return np.where((kind[:, None] == 2) & positive, 0.0, weight)  # a positive is no real negative

    def describe(self) -> str:
        return f"defer(window={self.window}, horizon={self.horizon}){self._on()}"


LABEL_STRATEGIES: dict[str, type[LabelStrategy]] = {
    s.name: s
    for s in (
        Oracle, Vanilla, Wait, Immediate, FakeNegativeWeighted, FakeNegativeCalibration, ElapsedSampling,
        RealNegatives,
    )
}  # fmt: skip
