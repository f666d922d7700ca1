"""What makes a domain: its topics and words, its item attributes, and how its users respond.

A :class:`Domain` is pure data plus two functions; the four built-in domains live in ``envs/news.py``,
``envs/ecommerce.py``, ``envs/music.py`` and ``envs/video.py``. Everything else in the simulator is
shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from envs.responses import RESPONSES
from envs.signals import Signal


@dataclass(frozen=True)
class Topic:
    """A hidden topic and the words item texts about it are written with."""

    name: str
    words: tuple[str, ...]


AttributeFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], dict[str, np.ndarray]]


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
        attributes: ``(topic (N,), quality (N,), rng) -> {name: (N,) float32}`` for generated catalogues.
        attribute_names: the item attributes ``respond`` reads, in order.
        response: the response model (a key of :data:`envs.responses.RESPONSES`).
        implicit_signals: kinds the response model fills, in order.
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
    attribute_names: tuple[str, ...]
    response: str
    implicit_signals: tuple[Signal, ...]
    text_signal: Signal | None
    default_delays: Mapping[str, object]
    reward_weights: Mapping[str, float]

    def __post_init__(self) -> None:
        if self.response not in RESPONSES:
            raise ValueError(
                f"domain {self.name!r}: unknown response {self.response!r}; expected one of {sorted(RESPONSES)}"
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
