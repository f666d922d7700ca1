"""What makes a domain: its topics and words, its item attributes, and how its users respond.

A :class:`Domain` is pure data plus two functions; the four built-in domains live in ``envs/news.py``,
``envs/ecommerce.py``, ``envs/music.py`` and ``envs/video.py``. Everything else in the simulator is
shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from envs.signals import Signal


@dataclass(frozen=True)
class Topic:
    """A hidden topic and the words item texts about it are written with."""

    name: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    """The implicit signals of a batch of ``C`` consumptions.

    Attributes:
        signals: kind → ``(C,)`` float32 values, one record per consumption and kind.
        engagement: ``(C,)`` fraction of the item consumed, in [0, 1]; costs session time.
        explicit_allowed: ``(C,)`` bool, where the user may go on to rate (e.g. only after a purchase).
    """

    signals: Mapping[Signal, np.ndarray]
    engagement: np.ndarray
    explicit_allowed: np.ndarray


AttributeFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], dict[str, np.ndarray]]
RespondFn = Callable[[np.ndarray, Mapping[str, np.ndarray], np.random.Generator], Response]


@dataclass(frozen=True)
class Domain:
    """A recommendation domain.

    Attributes:
        name: short lowercase name, also the Hydra ``env`` option.
        noun: what an item is called in review text ("article", "product", ...).
        topics: hidden topics with their vocabularies.
        generic_words: domain words not tied to a topic (verbs, brands, artists) for ``{g}`` slots.
        templates: item-text templates. Slots: ``{t0} {t1} {t2}`` words of the primary topic,
            ``{s}`` a word of the secondary topic, ``{g}`` a generic word, ``{T}`` the topic name, and
            any attribute by name (e.g. ``{price:.2f}``).
        attributes: ``(topic (N,), quality (N,), rng) -> {name: (N,) float32}``.
        respond: ``(satisfaction (C,) in (0, 1), item attributes {name: (C,)}, rng) -> Response``.
        implicit_signals: kinds ``respond`` returns, in order.
        text_signal: the explicit text kind (review or comment) written alongside some ratings, or None.
        default_delays: signal name → delay spec (see :meth:`envs.feedback.DelayTable.parse`).
        reward_weights: signal name → weight of ``value - neutral`` in the reward.
    """

    name: str
    noun: str
    topics: tuple[Topic, ...]
    generic_words: tuple[str, ...]
    templates: tuple[str, ...]
    attributes: AttributeFn
    respond: RespondFn
    implicit_signals: tuple[Signal, ...]
    text_signal: Signal | None
    default_delays: Mapping[str, object]
    reward_weights: Mapping[str, float]

    def write_text(
        self, template: int, topic: int, secondary: int, words: np.ndarray, attributes: dict
    ) -> str:
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


OPINIONS = {
    1: ("Terrible {noun}, a waste of time.", "Really disappointed by this {noun}.", "Awful, would not recommend this {noun}."),
    2: ("Not great; this {noun} fell short.", "Below expectations, a weak {noun}.", "Meh. I expected more from this {noun}."),
    3: ("An okay {noun}, nothing special.", "Average {noun}; some good parts, some dull.", "Fine, but forgettable {noun}."),
    4: ("A good {noun}, I enjoyed it.", "Solid {noun}, worth the time.", "Nice {noun}, would recommend."),
    5: ("Excellent {noun}, loved every bit!", "Fantastic {noun}, one of the best.", "Brilliant {noun}, highly recommended!"),
}


def write_opinion(noun: str, stars: int, choice: int) -> str:
    """Review/comment text whose sentiment matches ``stars`` (1..5); ``choice`` picks the phrasing."""
    phrases = OPINIONS[stars]
    return phrases[choice % len(phrases)].format(noun=noun)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
