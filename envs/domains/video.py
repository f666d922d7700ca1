"""Video: titles with genre and a synopsis line; watch fraction, completion, likes, ratings, comments.

>>> import gymnasium as gym, envs
>>> env = gym.make("FeedbackRec/Video-v0", item_features=None)
>>> sorted(env.observation_space.spaces)
['candidate_age', 'candidates', 'feedback', 'history', 'user_id']
"""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic, Version
from envs.manual import manual
from envs.registry import register_domain
from envs.signals import Signal

TOPICS = (
    Topic(
        "action",
        ("heist", "explosion", "agent", "chase", "mercenary", "rescue", "showdown", "bodyguard", "escape", "vengeance"),
    ),
    Topic(
        "comedy",
        (
            "roommates",
            "wedding",
            "prank",
            "road trip",
            "misfits",
            "blind date",
            "office",
            "reunion",
            "karaoke",
            "family dinner",
        ),
    ),
    Topic(
        "drama",
        (
            "inheritance",
            "betrayal",
            "courtroom",
            "grief",
            "scandal",
            "secret",
            "redemption",
            "divorce",
            "ambition",
            "letters",
        ),
    ),
    Topic(
        "horror",
        ("haunting", "cabin", "curse", "zombie", "ritual", "asylum", "whispers", "possession", "fog", "basement"),
    ),
    Topic(
        "sci-fi",
        ("starship", "android", "wormhole", "colony", "time loop", "alien", "cyborg", "mars", "clone", "singularity"),
    ),
    Topic(
        "documentary",
        (
            "ocean",
            "wildlife",
            "history",
            "volcano",
            "archive",
            "migration",
            "empire",
            "rainforest",
            "inventors",
            "arctic",
        ),
    ),
    Topic(
        "romance",
        (
            "paris",
            "first love",
            "letters",
            "summer fling",
            "proposal",
            "second chance",
            "vineyard",
            "dance",
            "soulmate",
            "café",
        ),
    ),
    Topic(
        "animation",
        ("dragon", "talking cat", "kingdom", "robot", "toy", "wizard", "island", "forest spirit", "pirate", "snowman"),
    ),
)

GENERIC = (
    "uncovers",
    "survives",
    "chases",
    "loses",
    "rebuilds",
    "questions",
    "discovers",
    "fights for",
    "escapes",
    "remembers",
)

TEMPLATES = (
    "The {t0} ({T}): a stranger {g} a {t1} and the {s}.",
    "{t0} and {t1} - {T}. One night {g} everything.",
    "Beyond the {t0} [{T}]: a story of {t1}, {t2} and {s}.",
    "{T} special: {t0}. Someone {g} the {t1}.",
)


def attributes(topic: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Duration in seconds: short clips to feature films (log-normal around 20 minutes)."""
    return {"duration_seconds": np.clip(rng.lognormal(np.log(1200), 0.9, len(topic)), 60, 10_800).astype(np.float32)}


VIDEO = Domain(
    name="video",
    title="Video",
    description=(
        "A viewer browses a row of videos (title, genre, one synopsis line) from eight hidden genres, picks at "
        "most one, watches a fraction (90% or more is a completion), may like it, and now and then rates it and "
        "leaves a comment whose tone matches the rating."
    ),
    noun="video",
    topics=TOPICS,
    generic_words=GENERIC,
    templates=TEMPLATES,
    attributes=attributes,
    attribute_names=("duration_seconds",),
    response="watch",
    implicit_signals=(Signal.CLICK, Signal.WATCH_FRACTION, Signal.COMPLETION, Signal.LIKE),
    text_signal=Signal.COMMENT,
    default_delays={
        "click": 0,
        "watch_fraction": 1,
        "completion": 1,
        "like": "geometric:2",
        "rating": "geometric:5",
        "comment": "geometric:5",
    },
    reward_weights={"click": 0.2, "watch_fraction": 1.0, "completion": 1.0, "like": 1.0, "rating": 0.5},
    tick_seconds=600.0,
    versions=(
        Version(0, "Initial release: a static catalogue."),
        Version(
            1,
            "Videos are uploaded (14 a day, their appeal halving over a week, 1,008 ticks).",
            {"publish_rate": 0.1, "freshness_half_life": 1008.0},
        ),
    ),
)


register_domain(VIDEO)
__doc__ += "\n\n" + manual(VIDEO)
