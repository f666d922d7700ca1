"""Music: tracks by artists in genres; plays, listen fraction, skips, likes, rare ratings.

>>> import gymnasium as gym, envs
>>> env = gym.make("FeedbackRec/Music-v0", num_items=50, num_candidates=10, slate_size=1)
>>> obs, _ = env.reset(seed=2)
>>> env.unwrapped.catalog.texts[int(obs["candidates"][0])].count("'")
2
"""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic, Version
from envs.manual import manual
from envs.registry import register_domain
from envs.signals import Signal

TOPICS = (
    Topic(
        "rock", ("guitar", "highway", "thunder", "rebel", "amplifier", "riff", "midnight", "garage", "stadium", "fire")
    ),
    Topic(
        "pop", ("heartbeat", "summer", "dance", "crush", "glitter", "radio", "forever", "party", "sugar", "starlight")
    ),
    Topic(
        "jazz", ("saxophone", "blue", "swing", "lounge", "trumpet", "smoky", "bebop", "velvet", "improvisation", "bass")
    ),
    Topic(
        "classical",
        ("sonata", "symphony", "concerto", "prelude", "orchestra", "nocturne", "violin", "adagio", "opera", "quartet"),
    ),
    Topic(
        "hip-hop", ("beats", "block", "hustle", "rhyme", "cypher", "street", "flow", "crown", "mixtape", "freestyle")
    ),
    Topic("electronic", ("synth", "bassline", "techno", "pulse", "laser", "rave", "circuit", "drop", "groove", "neon")),
    Topic(
        "folk", ("river", "banjo", "harvest", "cabin", "lantern", "mountain", "ballad", "fiddle", "meadow", "wanderer")
    ),
    Topic(
        "country", ("truck", "boots", "whiskey", "ranch", "dusty", "honky-tonk", "rodeo", "porch", "prairie", "sunset")
    ),
)

ARTISTS = (
    "The Lanterns",
    "Mira Vale",
    "DJ Orbit",
    "Jonah Reed",
    "Static Bloom",
    "Nova Quartet",
    "Cass & the Tide",
    "Little Harbor",
    "Eli Stone",
    "Velvet Echo",
)

TEMPLATES = (
    "'{t0} {t1}' by {g} - {T}",
    "'{t0} of {s}' by {g} ({T})",
    "{g} - '{t0} {t1} {t2}' [{T}]",
    "'Songs of the {t0}' by {g}, a {T} track with {s} vibes",
)


def attributes(topic: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Track duration in seconds: 2 to 7 minutes."""
    return {"duration_seconds": rng.uniform(120, 420, len(topic)).astype(np.float32)}


MUSIC = Domain(
    name="music",
    title="Music",
    description=(
        'A listener is offered a slate of tracks ("title" by artist, genre) over eight hidden genres. They play '
        "at most one, listen to a fraction of it (under 30% counts as a skip) and may like it; ratings are rare "
        "and there is no text. A run of skips sours the mood and ends the session."
    ),
    noun="track",
    topics=TOPICS,
    generic_words=ARTISTS,
    templates=TEMPLATES,
    attributes=attributes,
    attribute_names=("duration_seconds",),
    response="listen",
    implicit_signals=(Signal.PLAY, Signal.LISTEN_FRACTION, Signal.SKIP, Signal.LIKE),
    text_signal=None,
    default_delays={"play": 0, "skip": 0, "listen_fraction": 1, "like": "geometric:2", "rating": "geometric:5"},
    reward_weights={"play": 0.2, "listen_fraction": 1.0, "skip": -0.5, "like": 1.0, "rating": 0.5},
    tick_seconds=240.0,
    versions=(
        Version(0, "Initial release: a static catalogue."),
        Version(
            1,
            "Tracks are released (18 a day, their appeal halving over a week, 2,520 ticks); a play under 40% of "
            "the track is a skip, so about half the plays are skipped, as in the Spotify Sequential Skip "
            "Prediction Challenge data.",
            {"publish_rate": 0.05, "freshness_half_life": 2520.0, "response_params": {"skip_below": 0.4}},
        ),
    ),
)


register_domain(MUSIC)
__doc__ += "\n\n" + manual(MUSIC)
