"""Each domain's manual, written from its :class:`~envs.domain.Domain`: the numbers cannot drift from the data.

The sections follow Gymnasium's environment manuals (Description, Action Space, Observation Space, Rewards,
Starting State, Episode End, Arguments, Version History), with the domain's signals, its clock and items, and its
delays added. Every domain module appends its manual to its own docstring (``help(envs.domains.news)``).
"""

from __future__ import annotations

from collections.abc import Mapping

from envs.domain import Domain
from envs.feedback import parse_delay
from envs.registry import MAX_EPISODE_STEPS, env_id
from envs.signals import SIGNALS, Role

UNIT_NAMES = {"seconds": "second", "stars": "star", "EUR": "EUR", "fraction": "whole item"}


def manual(domain: Domain) -> str:
    """The manual of ``domain`` as Markdown sections."""
    sections = {
        "Description": domain.description,
        "Signals": signals_section(domain),
        "Clock and Items": clock_section(domain),
        "Action Space": (
            "``MultiDiscrete([num_candidates] * slate_size)``: indices into ``obs['candidates']``, top slot "
            "first. A repeated index shows nothing in its later slot (``duplicates='mask'``, reported in "
            "``info['masked_positions']``) or raises (``'error'``)."
        ),
        "Observation Space": (
            "``Dict``: ``candidates`` ``(M,)`` catalogue indices (item slots); ``candidate_age`` ``(M,)`` ticks since "
            "each candidate was published; ``candidate_features`` ``(M, d)`` (by default "
            f"the category one-hot and the standardised log of {_listing(domain.attribute_names)}, with item churn "
            "also the age over the lifetime; or the ``item_features`` array you pass, e.g. BERT embeddings, in a "
            "static catalogue; absent when ``item_features=None``); "
            "``history`` ``(H,)`` items consumed this session (-1 pads); ``feedback`` ``(L, 6)`` records that "
            "arrived this step (columns :data:`envs.simulator.FEEDBACK_FIELDS`); ``user_id`` ``(1,)``."
        ),
        "Rewards": (
            f"The sum over the records that arrived this step of ``weight · (value − neutral)``: "
            f"{rewards_phrase(domain.reward_weights)}; other signals weigh 0 (set ``reward_weights`` or "
            "``reward_signals`` to change it). Delays make the reward late: "
            f"{delays_phrase(domain.default_delays)} (in ticks)."
        ),
        "Starting State": (
            "A user not active elsewhere is drawn from the population; fatigue is zero, mood 1, the time budget "
            "the user's patience. Feedback that waited for this user (their session had ended) arrives in "
            "``info['feedback']`` of the reset."
        ),
        "Episode End": (
            "Terminated when the user's time budget runs out or their mood falls below their leave threshold; "
            f"truncated at ``max_episode_steps`` ({MAX_EPISODE_STEPS} when made through ``gymnasium.make``)."
        ),
        "Arguments": (
            "``catalog``, ``item_features``, ``population`` and every field of :class:`envs.config.SimConfig`, "
            f'e.g. ``gymnasium.make("{env_id(domain)}", num_candidates=100, slate_size=10, delays="none")``.'
            + (f" {domain.arguments}" if domain.arguments else "")
        ),
        "Version History": "\n".join(_version_line(v) for v in domain.versions),
    }
    return "\n\n".join(f"## {title}\n{text}" for title, text in sections.items())


def signals_section(domain: Domain) -> str:
    """What the domain's users send: the implicit signals of its response model, then the explicit ones."""
    implicit = [_signal_phrase(kind) for kind in domain.implicit_signals]
    low, high, step = domain.rating_scale
    explicit = [
        f"{SIGNALS.name(kind)} ({SIGNALS.info(kind).role.value}, {low:g} to {high:g} stars in steps of {step:g})"
        for kind in SIGNALS.with_role(Role.RATING)
    ]
    if domain.text_signal is not None:
        explicit.append(f"{_signal_phrase(domain.text_signal)}, written with some ratings in the rating's tone")
    return f"Implicit: {'; '.join(implicit)}. Explicit (rare): {'; '.join(explicit)}."


def clock_section(domain: Domain) -> str:
    """What a tick lasts, that every span is in ticks, and how items come and go."""
    return (
        f"One tick of the world clock is {_duration(domain.tick_seconds)}, about one step of a session. Every session "
        "of a vector env lives on the same clock (one tick per batched step; the single env is the same world with "
        "one session), and every span is counted in ticks: feedback delays, item lifetimes (``item_lifetime``), "
        "candidate ages (``candidate_age``), freshness half-lives (``freshness_half_life``) and the time until a user "
        "returns. With ``publish_rate=0`` the catalogue is static. With ``publish_rate > 0`` new items (generated "
        "text carrying their hidden topics) are published at that many per tick into a ring of ``num_items`` slots, "
        "each offered until ``item_lifetime`` ticks old (default: as long as its slot holds it), its appeal halving "
        "every ``freshness_half_life`` ticks; candidates are drawn from the live items as a candidate generator "
        "would (shares ``candidate_fresh`` of the newest, ``candidate_popular`` of the recently most consumed, the "
        "rest at random), and ``info['published']`` lists the items published each step (:mod:`envs.pool`)."
    )


def rewards_phrase(weights: Mapping[str, float]) -> str:
    """``"click 1, share 2, rating 0.5 per star above 3"``."""
    parts = []
    for name, weight in weights.items():
        info = SIGNALS.info(SIGNALS.parse(name))
        unit = "" if info.binary else f" per {UNIT_NAMES[info.unit]}"
        above = f" above {info.neutral:g}" if info.neutral else ""
        parts.append(f"{info.name} {weight:g}{unit}{above}")
    return ", ".join(parts)


def delays_phrase(delays: Mapping[str, object]) -> str:
    """``"click at once, dwell_seconds 1 step, share geometric with mean 1.5 steps"``."""
    parts = []
    for name, spec in delays.items():
        mean, geometric = parse_delay(name, spec)
        steps = f"{mean:g} step{'s' if mean != 1 else ''}"
        parts.append(f"{name} {'at once' if mean == 0 else f'geometric with mean {steps}' if geometric else steps}")
    return ", ".join(parts)


def _version_line(version) -> str:
    """``"- v1: <changes> Defaults: publish_rate=1, ..."`` (the defaults from the version's data)."""
    defaults = ", ".join(f"``{k}={v!r}``" for k, v in version.defaults.items())
    return f"- v{version.number}: {version.changes}" + (f" Defaults: {defaults}." if defaults else "")


def _duration(seconds: float) -> str:
    """``"one minute"``, ``"2 minutes"``, ``"45 seconds"``, ``"one hour"``."""
    for unit, length in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= length and seconds % length == 0:
            count = seconds // length
            return f"one {unit}" if count == 1 else f"{count:g} {unit}s"
    return f"{seconds:g} seconds"


def _signal_phrase(kind: int) -> str:
    info = SIGNALS.info(kind)
    if info.binary:
        return f"{info.name} ({info.role.value}, 0 or 1)"
    return f"{info.name} ({info.role.value}, {info.low:g} to {info.high:g} {info.unit})"


def _listing(names: tuple[str, ...]) -> str:
    quoted = [f"``{n}``" for n in names]
    return " and ".join(quoted) if quoted else "no attribute"
