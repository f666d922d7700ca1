"""Settings of a simulated world, validated on construction with messages that name the bad value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from envs.choice import CHOICE_MODELS
from envs.signals import REWARD_SIGNALS, SIGNALS, RatingScale

DUPLICATE_POLICIES = ("mask", "error")
DEFAULT_USERS = 1000


@dataclass(frozen=True)
class SimConfig:
    """Every keyword an environment accepts besides ``catalog``, ``item_features`` and ``render_mode``.

    Spans of time are in ticks of the world clock (:mod:`envs.clock`; a domain's ``tick_seconds`` says what a tick
    lasts).

    Attributes:
        num_items: catalogue size when the catalogue is generated; with item churn, the number of item slots.
        num_candidates: ``M``, candidates offered per step (drawn afresh each step).
        slate_size: ``k``, items the agent shows per step.
        num_users: size of the user population; None sizes it to the batch: :data:`DEFAULT_USERS`, or the
            number of concurrent sessions when larger (each session needs its own user).
        population_seed: fixes the catalogue and the population (not the episode randomness).
        choice_model: ``"mnl"`` or ``"cascade"``.
        position_bias: cascade's examination decay per slot, in (0, 1].
        misclick_rate: chance per step that the user clicks a random slot instead of choosing.
        rating_noise: standard deviation of rating noise, in stars.
        rating_heaping: on a rating scale finer than whole stars, the chance a rating is rounded to whole stars
            (raters favour them), in [0, 1].
        rating_propensity: mean chance that a user rates a consumed item.
        spam_fraction: share of users who rate uniformly at random.
        rating_bias_spread: standard deviation of the users' rating bias (harsh < 0 < generous), in stars.
        privacy_epsilon: ε of local differential privacy on feedback values, or None (off).
        delays: signal name → delay spec, ``"none"`` for no delays, or None for the domain's defaults.
        delay_scale: multiplies every delay mean (sweeps use 0, 0.5, 2, ...).
        max_delay: cap of geometric delays, in steps.
        duplicates: ``"mask"`` (a repeated slot shows nothing) or ``"error"``.
        history_length: consumed items kept in the observation.
        feedback_length: arrived feedback records kept in the observation per step.
        reward_weights: signal name → weight, replacing the domain's defaults where given.
        reward_signals: which signals the reward counts: ``"all"``, ``"explicit"`` (ratings and texts) or
            ``"implicit"`` (behaviour); the others weigh 0 whatever ``reward_weights`` says.
        drift_rate: how far interests move toward (or away from) a consumed item's topics.
        fatigue_weight: utility lost per unit of fatigue on an item's topics.
        fatigue_decay: per-step decay of fatigue, in [0, 1).
        quality_weight: utility per unit of hidden item quality.
        publish_rate: new items per tick (:mod:`envs.pool`); 0 is a static catalogue.
        item_lifetime: ticks an item stays offerable after its publication; None: as long as the item slots hold
            it (about ``num_items / publish_rate`` ticks). Needs ``publish_rate > 0``.
        freshness_half_life: ticks over which an item's appeal halves: its utility falls by
            ``ln 2 · τ̄ · age / freshness_half_life``, ``τ̄`` the population's mean choice temperature, so the choice
            weight ``exp(u / τ)`` of a user of mean temperature halves every half-life (and their satisfaction with
            a stale item is lower too); None: no decay. Needs ``publish_rate > 0``.
        candidate_fresh: with churn, the share of the ``M`` candidates drawn among the newest live items (twice as
            many newest items as fresh candidates).
        candidate_popular: with churn, the share drawn among the recently most consumed live items (a trending list
            twice as long); the rest are drawn uniformly among the other live items. A static catalogue draws all
            ``M`` uniformly.
        popularity_half_life: ticks over which a consumption's weight in the trending list halves.
        click_reluctance: utility the no-click option gains in the choice only: users pass over more slates, and
            what they do consume pleases them as much as before (satisfaction still compares an item with their
            no-click utility).
        patience: the population's mean session time budget, in steps (an item consumed in full costs 2).
        response_params: constants of the domain's response model by name (e.g. ``{"cart_rate": 0.4}``), replacing
            the domain's where given (see :data:`envs.responses.RESPONSES`).
        rating_scale: ``(low, high, step)`` the stars users rate with, or None for the domain's.
    """

    num_items: int = 2000
    num_candidates: int = 20
    slate_size: int = 5
    num_users: int | None = None
    population_seed: int = 0
    choice_model: str = "mnl"
    position_bias: float = 0.8
    misclick_rate: float = 0.01
    rating_noise: float = 0.5
    rating_heaping: float = 0.0
    rating_propensity: float = 0.04
    spam_fraction: float = 0.02
    rating_bias_spread: float = 0.4
    privacy_epsilon: float | None = None
    delays: Mapping[str, object] | str | None = None
    delay_scale: float = 1.0
    max_delay: int = 200
    duplicates: str = "mask"
    history_length: int = 10
    feedback_length: int = 16
    reward_weights: Mapping[str, float] | None = None
    reward_signals: str = "all"
    drift_rate: float = 0.05
    fatigue_weight: float = 0.6
    fatigue_decay: float = 0.8
    quality_weight: float = 0.5
    publish_rate: float = 0.0
    item_lifetime: int | None = None
    freshness_half_life: float | None = None
    candidate_fresh: float = 0.25
    candidate_popular: float = 0.25
    popularity_half_life: float = 60.0
    click_reluctance: float = 0.0
    patience: float = 30.0
    response_params: Mapping[str, float] | None = None
    rating_scale: Sequence[float] | None = None

    def __post_init__(self) -> None:
        for name in ("num_items", "num_candidates", "slate_size", "history_length", "feedback_length"):
            _require_int(name, getattr(self, name), low=1)
        if self.num_users is not None:
            _require_int("num_users", self.num_users, low=1)
        _require_int("max_delay", self.max_delay, low=0)
        _require_int("population_seed", self.population_seed, low=0)
        if self.num_candidates > self.num_items:
            raise ValueError(
                f"num_candidates={self.num_candidates} exceeds num_items={self.num_items}; "
                f"expected 1 <= num_candidates <= num_items"
            )
        if self.slate_size > self.num_candidates:
            raise ValueError(
                f"slate_size={self.slate_size} exceeds num_candidates={self.num_candidates}; "
                f"expected 1 <= slate_size <= num_candidates"
            )
        if self.choice_model not in CHOICE_MODELS:
            raise ValueError(f"unknown choice_model {self.choice_model!r}; expected one of {sorted(CHOICE_MODELS)}")
        if self.reward_signals not in REWARD_SIGNALS:
            raise ValueError(f"reward_signals={self.reward_signals!r}; expected one of {REWARD_SIGNALS}")
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicates={self.duplicates!r}; expected one of {DUPLICATE_POLICIES}")
        for name in ("misclick_rate", "rating_propensity", "spam_fraction", "fatigue_decay"):
            _require_range(name, getattr(self, name), 0.0, 1.0)
        _require_range("position_bias", self.position_bias, 0.0, 1.0, low_open=True)
        for name in ("rating_noise", "delay_scale", "drift_rate", "fatigue_weight", "quality_weight"):
            _require_range(name, getattr(self, name), 0.0, float("inf"))
        _require_range("rating_bias_spread", self.rating_bias_spread, 0.0, float("inf"))
        if self.privacy_epsilon is not None:
            _require_range("privacy_epsilon", self.privacy_epsilon, 0.0, float("inf"), low_open=True)
        if not (self.delays is None or self.delays == "none" or isinstance(self.delays, Mapping)):
            raise ValueError(f"delays={self.delays!r}; expected 'none', a mapping of signal to delay, or None")
        if not (self.reward_weights is None or isinstance(self.reward_weights, Mapping)):
            raise ValueError(f"reward_weights={self.reward_weights!r}; expected a mapping of signal to weight, or None")
        for name, weight in (self.reward_weights or {}).items():
            SIGNALS.parse(name)
            _require_range(f"reward_weights[{name!r}]", weight, -float("inf"), float("inf"))
        _require_range("rating_heaping", self.rating_heaping, 0.0, 1.0)
        self._check_churn()
        _require_range("click_reluctance", self.click_reluctance, -float("inf"), float("inf"))
        _require_range("patience", self.patience, 0.0, float("inf"), low_open=True)
        if not (self.response_params is None or isinstance(self.response_params, Mapping)):
            raise ValueError(
                f"response_params={self.response_params!r}; expected a mapping of constant name to value, or None"
            )
        if self.rating_scale is not None:
            RatingScale.parse(self.rating_scale)

    def _check_churn(self) -> None:
        _require_range("publish_rate", self.publish_rate, 0.0, float("inf"))
        if self.item_lifetime is not None:
            _require_int("item_lifetime", self.item_lifetime, low=0)
        if self.freshness_half_life is not None:
            _require_range("freshness_half_life", self.freshness_half_life, 0.0, float("inf"), low_open=True)
        for name in ("item_lifetime", "freshness_half_life"):
            if getattr(self, name) is not None and self.publish_rate == 0:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} with publish_rate=0; expected publish_rate > 0 (in a static "
                    f"catalogue every item is as old as the world) or {name}=None"
                )
        for name in ("candidate_fresh", "candidate_popular"):
            _require_range(name, getattr(self, name), 0.0, 1.0)
        if self.candidate_fresh + self.candidate_popular > 1:
            raise ValueError(
                f"candidate_fresh={self.candidate_fresh} + candidate_popular={self.candidate_popular} exceeds 1; "
                "expected shares of the candidates summing to at most 1 (the rest are drawn at random)"
            )
        _require_range("popularity_half_life", self.popularity_half_life, 0.0, float("inf"), low_open=True)

    @property
    def churns(self) -> bool:
        """Whether items are published and expire (``publish_rate > 0``)."""
        return self.publish_rate > 0

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, object], num_envs: int = 1) -> SimConfig:
        """Build from environment keyword arguments for ``num_envs`` concurrent sessions (which sizes a
        default population, see ``num_users``); an unknown keyword is named in the error."""
        known = cls.keywords()
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown environment argument(s) {unknown}; expected some of {sorted(known)}")
        return cls(**{**kwargs, "num_users": kwargs.get("num_users") or max(DEFAULT_USERS, num_envs)})

    @classmethod
    def keywords(cls) -> set[str]:
        """The names of every setting."""
        return {f.name for f in fields(cls)}


def _require_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r}; expected an integer >= {low}")


def _require_range(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    """``value`` must be a finite real number in the interval; an infinite bound only means unbounded
    (an infinite weight or rate would turn rewards and utilities into inf or NaN)."""
    bracket = "(" if low_open else "["
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r}; expected a finite number in {bracket}{low}, {high}]")
    if not ((value > low if low_open else value >= low) and value <= high):
        raise ValueError(f"{name}={value!r}; expected a number in {bracket}{low}, {high}]")
