"""What makes a domain: its topics and words, its item attributes, its signals, and how its users respond.

A :class:`Domain` is pure data plus a few functions; the built-in domains live one module each in
:mod:`envs.domains` (news, e-commerce, music, video, and MovieLens, a world fitted to real ratings), and each
registers itself (:func:`envs.registry.register_domain`). Everything else in the simulator is shared: one
environment class and one vector class serve every domain, and each domain's manual is written from its data
(:func:`envs.manual.manual`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from envs.responses import RESPONSES
from envs.signals import SIGNALS, RatingScale


@dataclass(frozen=True)
class Topic:
    """A hidden topic and the words item texts about it are written with."""

    name: str
    words: tuple[str, ...]


AttributeFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], dict[str, np.ndarray]]
WorldFn = Callable[..., tuple[object, object, dict]]
"""``(catalog, population, kwargs, **extra) -> (catalog, population, kwargs)``: a world fitted to data fills in
the catalogue, the population and fitted defaults of the keyword arguments; ``extra`` are the world's own
keywords (e.g. MovieLens ``ratings``)."""


@dataclass(frozen=True)
class Version:
    """One registered version of a domain's environment (Gymnasium's ``-v<number>`` convention).

    Attributes:
        number: the version (``FeedbackRec/News-v1`` is number 1).
        changes: what this version changed, for the manual's Version History.
        defaults: keyword arguments this version sets by default (a user's own keywords still win).
    """

    number: int
    changes: str
    defaults: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    """A recommendation domain.

    Attributes:
        name: short lowercase name, also the Hydra ``env`` option.
        title: the environment id's stem (``"News"`` registers ``FeedbackRec/News-v0``).
        description: the manual's Description section: what a user sees and does.
        noun: what an item is called in review text ("article", "product", ...).
        topics: hidden topics with their vocabularies.
        generic_words: domain words not tied to a topic (verbs, brands, artists) for ``{g}`` slots.
        templates: item-text templates. Slots: ``{t0} {t1} {t2}`` words of the primary topic,
            ``{s}`` a word of the secondary topic, ``{g}`` a generic word, ``{T}`` the topic name, and
            any attribute by name (e.g. ``{price:.2f}``).
        attributes: ``(topic (N,), quality (N,), rng) -> {name: (N,) float32}`` for generated catalogues.
        attribute_names: the item attributes ``respond`` reads, in order.
        response: the response model (a key of :data:`envs.responses.RESPONSES`).
        implicit_signals: kinds the response model fills, in order.
        text_signal: the explicit text kind (review or comment) written alongside some ratings, or None.
        default_delays: signal name → delay spec in ticks (see :meth:`envs.feedback.DelayTable.parse`).
        reward_weights: signal name → weight of ``value - neutral`` in the reward.
        tick_seconds: how long one tick of the world clock lasts (:mod:`envs.clock`): about the time one step of
            a session takes (reading an article, playing a track); delays, item lifetimes, ages and return times
            are counted in ticks.
        response_params: constants of the response model replacing its defaults
            (:attr:`envs.responses.ResponseModel.params`).
        rating_scale: the stars its users rate with (``(low, high, step)``; the rating signal's 1..5 whole stars
            unless the domain says otherwise).
        versions: the registered versions, oldest first.
        world: for a world fitted to data, what builds its catalogue and population (see :data:`WorldFn`);
            None for a generated world.
        arguments: the manual's text on the keywords only this domain takes (its ``world``'s).
    """

    name: str
    title: str
    description: str
    noun: str
    topics: tuple[Topic, ...]
    generic_words: tuple[str, ...]
    templates: tuple[str, ...]
    attributes: AttributeFn
    attribute_names: tuple[str, ...]
    response: str
    implicit_signals: tuple[int, ...]
    text_signal: int | None
    default_delays: Mapping[str, object]
    reward_weights: Mapping[str, float]
    tick_seconds: float = 60.0
    response_params: Mapping[str, float] = field(default_factory=dict)
    rating_scale: tuple[float, float, float] = field(default_factory=RatingScale.of_signal)
    versions: tuple[Version, ...] = (Version(0, "Initial release."),)
    world: WorldFn | None = None
    arguments: str = ""

    def __post_init__(self) -> None:
        if not self.title.isidentifier():
            raise ValueError(f"domain {self.name!r}: title={self.title!r}; expected an identifier such as 'News'")
        numbers = [v.number for v in self.versions]
        if not numbers or numbers != sorted(set(numbers)):
            raise ValueError(f"domain {self.name!r}: versions {numbers}; expected distinct numbers, oldest first")
        for name in (*self.default_delays, *self.reward_weights):
            SIGNALS.parse(name)
        if self.response not in RESPONSES:
            raise ValueError(
                f"domain {self.name!r}: unknown response {self.response!r}; expected one of {sorted(RESPONSES)}"
            )
        if not (isinstance(self.tick_seconds, (int, float)) and self.tick_seconds > 0):
            raise ValueError(f"domain {self.name!r}: tick_seconds={self.tick_seconds!r}; expected a number > 0")
        RESPONSES[self.response].constants(self.response, self.response_params)
        object.__setattr__(
            self, "rating_scale", RatingScale.parse(self.rating_scale, f"domain {self.name!r}: rating_scale")
        )
        width = RESPONSES[self.response].signals
        if len(self.implicit_signals) != width:
            raise ValueError(
                f"domain {self.name!r}: response {self.response!r} fills {width} values, but implicit_signals "
                f"names {len(self.implicit_signals)}; expected {width} signals, in the response's order"
            )

    def write_text(self, template: int, topic: int, secondary: int, words: np.ndarray, attributes: dict) -> str:
        """The text of one item; ``words`` ``(4,)`` are random integers choosing the slot words."""
        primary = self.topics[topic].words
        return self.templates[template].format(
            t0=primary[words[0] % len(primary)],
            t1=primary[words[1] % len(primary)],
            t2=primary[(words[1] + 1 + words[3] % (len(primary) - 1)) % len(primary)],
            s=self.topics[secondary].words[words[2] % len(self.topics[secondary].words)],
            g=self.generic_words[words[3] % len(self.generic_words)],
            T=self.topics[topic].name,
            **attributes,
        )
