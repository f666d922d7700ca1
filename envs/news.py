"""News: headlines to read, dwell time, shares, rare ratings and comments."""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic
from envs.signals import Signal
from envs.slate_env import SlateEnv
from envs.vector_env import SlateVectorEnv

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
)


class NewsEnv(SlateEnv):
    """## Description
    A reader opens a news app and is shown a slate of headlines. Headlines are generated text about ten
    hidden topics (politics, business, technology, ...). The reader picks at most one article, reads part
    of it and may share it; a few percent of readers rate it (1–5) and some comment.

    ## Action Space
    ``MultiDiscrete([num_candidates] * slate_size)``: indices into ``obs["candidates"]``, top slot first.
    A repeated index shows nothing in its later slot (``duplicates="mask"``) or raises (``"error"``).

    ## Observation Space
    ``Dict``: ``candidates`` ``(M,)`` catalogue indices; ``candidate_features`` ``(M, d)`` (category
    one-hot + article length, or your ``item_features``; absent when ``item_features=None``);
    ``history`` ``(H,)`` articles read this session (-1 pads); ``feedback`` ``(L, 6)`` records that
    arrived this step (columns in :data:`envs.simulator.FEEDBACK_FIELDS`); ``user_id`` ``(1,)``.

    ## Rewards
    Sum over arrived records of ``weight * (value - neutral)``: click 1, dwell 0.01 per second,
    share 2, rating 0.5 per star above 3. Delays (dwell 1 step, shares ~1.5, ratings/comments ~5)
    make the reward late.

    ## Starting State
    A user not reading elsewhere is drawn from the population; fatigue is zero, mood 1, the time budget
    is the user's patience. Feedback that waited for this user arrives in ``info["feedback"]``.

    ## Episode End
    Terminated when the reader's time budget runs out or mood falls below their leave threshold;
    truncated at ``max_episode_steps`` (200 when made through ``gymnasium.make``).

    ## Arguments
    ``catalog``, ``item_features`` and every field of :class:`envs.config.SimConfig`, e.g.
    ``gymnasium.make("FeedbackRec/News-v0", num_candidates=100, slate_size=10, delays="none")``.

    >>> import gymnasium as gym, envs
    >>> env = gym.make("FeedbackRec/News-v0", num_items=200)
    >>> obs, info = env.reset(seed=0)
    >>> obs["candidates"].shape, env.action_space
    ((20,), MultiDiscrete([20 20 20 20 20]))
    """

    domain = NEWS


class NewsVectorEnv(SlateVectorEnv):
    """:class:`NewsEnv` for ``num_envs`` readers at once (``gymnasium.make_vec``)."""

    domain = NEWS
