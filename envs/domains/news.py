"""News: headlines to read, dwell time, shares, rare ratings and comments.

>>> import gymnasium as gym, envs
>>> env = gym.make("FeedbackRec/News-v0", num_items=200)
>>> obs, info = env.reset(seed=0)
>>> obs["candidates"].shape, env.action_space
((20,), MultiDiscrete([20 20 20 20 20]))
"""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic, Version
from envs.manual import manual
from envs.registry import register_domain
from envs.signals import Signal

TOPICS = (
    Topic(
        "politics",
        (
            "parliament",
            "election",
            "senator",
            "coalition",
            "ballot",
            "minister",
            "campaign",
            "reform",
            "vote",
            "policy",
        ),
    ),
    Topic(
        "business",
        ("markets", "startup", "merger", "earnings", "investors", "inflation", "shares", "bank", "tariffs", "retail"),
    ),
    Topic(
        "technology",
        (
            "smartphone",
            "software",
            "chip",
            "robotics",
            "cybersecurity",
            "cloud",
            "algorithm",
            "browser",
            "battery",
            "satellite",
        ),
    ),
    Topic(
        "science",
        (
            "telescope",
            "genome",
            "physics",
            "fossil",
            "laboratory",
            "particle",
            "galaxy",
            "experiment",
            "species",
            "quantum",
        ),
    ),
    Topic(
        "health",
        ("vaccine", "hospital", "nutrition", "sleep", "clinic", "therapy", "fitness", "virus", "diet", "surgery"),
    ),
    Topic(
        "sports",
        (
            "football",
            "championship",
            "striker",
            "marathon",
            "coach",
            "tennis",
            "olympics",
            "league",
            "goalkeeper",
            "cycling",
        ),
    ),
    Topic(
        "entertainment",
        ("celebrity", "festival", "premiere", "album", "actor", "concert", "streaming", "award", "sitcom", "director"),
    ),
    Topic(
        "travel",
        ("airline", "island", "museum", "passport", "resort", "hiking", "cruise", "heritage", "beach", "railway"),
    ),
    Topic(
        "food", ("restaurant", "recipe", "chef", "bakery", "vegan", "wine", "harvest", "spices", "coffee", "dessert")
    ),
    Topic(
        "climate",
        (
            "drought",
            "emissions",
            "wildfire",
            "glacier",
            "solar",
            "flooding",
            "heatwave",
            "recycling",
            "forest",
            "hurricane",
        ),
    ),
)

GENERIC = (
    "surprises",
    "reshapes",
    "divides",
    "boosts",
    "challenges",
    "reveals",
    "threatens",
    "inspires",
    "delays",
    "transforms",
)

TEMPLATES = (
    "{t0} {g} {t1} debate as {s} worries grow",
    "New {t0} report: what the {t1} news means for {s}",
    "Inside the {t0} story that {g} the {t1} world",
    "{T} briefing: {t0}, {t1} and the {s} question",
    "Why the latest {t0} {g} experts on {t1}",
    "Five things to know about {t0} and {t1} this week",
)


def attributes(topic: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Article length in words: log-normal around 600."""
    return {"length_words": np.clip(rng.lognormal(np.log(600), 0.5, len(topic)), 80, 5000).astype(np.float32)}


NEWS = Domain(
    name="news",
    title="News",
    description=(
        "A reader opens a news app and is shown a slate of headlines: generated text about ten hidden topics "
        "(politics, business, technology, ...). The reader picks at most one article, reads part of it (dwell "
        "time grows with satisfaction and the article's length) and may share it; a few percent of readers rate "
        "it 1–5 stars and some write a comment."
    ),
    noun="article",
    topics=TOPICS,
    generic_words=GENERIC,
    templates=TEMPLATES,
    attributes=attributes,
    attribute_names=("length_words",),
    response="read",
    implicit_signals=(Signal.CLICK, Signal.DWELL_SECONDS, Signal.SHARE),
    text_signal=Signal.COMMENT,
    default_delays={
        "click": 0,
        "dwell_seconds": 1,
        "share": "geometric:1.5",
        "rating": "geometric:5",
        "comment": "geometric:5",
    },
    reward_weights={"click": 1.0, "share": 2.0, "rating": 0.5},  # dwell is informative but length-confounded
    tick_seconds=60.0,
    versions=(
        Version(0, "Initial release: a static catalogue."),
        Version(
            1,
            "Stories are published and age: 720 a day, each story's appeal halving over 36 hours (2,160 ticks; "
            "Dezső et al., Phys. Rev. E 73, 066132, 2006); a session is one visit of a few clicks, as a MIND "
            "impression list (about 1.5 clicks over 37 headlines; Wu et al., ACL 2020).",
            {"publish_rate": 0.5, "freshness_half_life": 2160.0, "patience": 1.7},
        ),
    ),
)


register_domain(NEWS)
__doc__ += "\n\n" + manual(NEWS)
