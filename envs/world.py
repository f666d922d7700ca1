"""What an environment is built from: its domain, its settings, and — for a world fitted to data — the
catalogue and population the data give. Shared by the single and the vector environment."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.catalog import Catalog
from envs.config import SimConfig
from envs.domain import Domain
from envs.registry import get_domain
from envs.simulator import Simulator
from envs.users import Population

WORLD_ARGUMENTS = ("catalog", "population", "kwargs")
"""The parameters every :data:`envs.domain.WorldFn` takes before its own keywords."""


def make_simulator(
    domain: str | Domain,
    num_envs: int,
    kwargs: Mapping[str, Any],
    catalog: Catalog | None = None,
    item_features: str | np.ndarray | None = "meta",
    population: Population | None = None,
    max_episode_steps: int | None = None,
) -> Simulator:
    """The simulator of ``num_envs`` sessions of ``domain`` (a registered name or a :class:`Domain`).

    ``kwargs`` are :class:`SimConfig` fields and, for a world fitted to data, the world's own keywords
    (e.g. MovieLens ``ratings``); an unknown keyword is refused, naming every valid one.
    """
    domain = get_domain(domain)
    settings = {k: v for k, v in kwargs.items() if k in SimConfig.keywords()}
    extra = {k: v for k, v in kwargs.items() if k not in settings}
    own = world_keywords(domain)
    unknown = sorted(set(extra) - set(own))
    if unknown:
        valid = sorted(SimConfig.keywords() | set(own))
        raise TypeError(
            f"unknown environment argument(s) {unknown} for domain {domain.name!r}; expected some of {valid}"
        )
    config = SimConfig.from_kwargs(settings, num_envs)
    if domain.world is not None:
        catalog, population, settings = domain.world(
            catalog, population, {**settings, "num_users": config.num_users}, **extra
        )
        config = SimConfig.from_kwargs(settings, num_envs)
    return Simulator(domain, config, num_envs, catalog, item_features, max_episode_steps, population)


def world_keywords(domain: Domain) -> tuple[str, ...]:
    """The keywords only ``domain``'s fitted world takes (none for a generated world)."""
    if domain.world is None:
        return ()
    return tuple(p for p in inspect.signature(domain.world).parameters if p not in WORLD_ARGUMENTS)


RESET_OPTIONS = ("start_tick",)
"""What ``reset(seed=..., options=...)`` accepts: ``start_tick``, the tick the fresh world's clock starts at."""


def start_tick(options: Mapping[str, Any] | None) -> int:
    """The ``start_tick`` of a world reset's ``options`` (0 when absent); another key is refused, naming it."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"reset options {unknown}; expected some of {list(RESET_OPTIONS)}")
    return options.get("start_tick", 0)
