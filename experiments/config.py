"""The ``env`` config group's schema, derived from :class:`envs.SimConfig`, and the arguments a run builds a world with.

:data:`EnvSettings` holds every :class:`~envs.SimConfig` field with the dataclass's own type and default (a field
added to ``SimConfig`` appears here by itself), ``id`` (the registered world) and the keywords that only some worlds
take (MovieLens ``ratings``), read from each registered domain's fitted world. Hydra checks every ``env.*`` key
against it: ``env.choice_model=cascade`` needs no ``+``, ``env.choise_model=cascade`` fails naming the key, and
``env.num_items=many`` naming the value.

Importing this module registers the schema in Hydra's ConfigStore as ``env_schema`` (``conf/config.yaml`` lists it
first among its defaults) and the resolver ``world_default`` (``conf/env/movielens.yaml``). Every program that
composes ``conf/`` imports it first: ``experiments/run.py``, ``compare.py`` and ``realism.py`` do.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from functools import cache
from typing import Any, Optional, Union

import gymnasium as gym
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from envs import SimConfig
from envs.registry import get_domain
from envs.world import world_keywords as domain_world_keywords

NAMESPACE = "FeedbackRec/"
PLAIN = (bool, int, float, str)


def config_type(hint: Any) -> Any:
    """The OmegaConf type of a field annotated ``hint``: plain types and their Optional keep their type; anything
    else (mappings, unions of containers, paths) is ``Any``, left for the world to check (a typed mapping could not
    hold an interpolation such as ``${feedback.reward_weights}``)."""
    if hint in PLAIN:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        typed = config_type(inner[0]) if len(inner) == 1 else Any
        return Any if typed is Any else Optional[typed]  # noqa: UP045 (a runtime type, not an annotation)
    return Any


def world_ids() -> list[str]:
    """Every registered FeedbackRec world."""
    return sorted(i for i in gym.registry if i.startswith(NAMESPACE))


@cache
def world_keywords(env_id: str) -> dict[str, inspect.Parameter]:
    """The keywords world ``env_id`` takes besides :class:`~envs.SimConfig`'s (its domain's fitted world's, e.g.
    MovieLens ``ratings``; none for a generated world), each with its parameter (annotation and default)."""
    domain = get_domain(gym.spec(env_id).kwargs["domain"])
    if domain.world is None:
        return {}
    parameters = inspect.signature(domain.world, eval_str=True).parameters
    return {name: parameters[name] for name in domain_world_keywords(domain)}


def env_schema(settings: type, keywords: dict[str, inspect.Parameter]) -> type:
    """The structured config of the ``env`` group: ``id`` (required), every field of the dataclass ``settings``
    with its type and default, and ``keywords`` (world keyword → constructor parameter) with theirs."""
    hints = typing.get_type_hints(settings)
    fields = [("id", str, dataclasses.field(default=MISSING))]
    for f in dataclasses.fields(settings):
        default = (
            dataclasses.field(default=f.default)
            if f.default is not dataclasses.MISSING
            else dataclasses.field(default_factory=f.default_factory)
        )
        fields.append((f.name, config_type(hints[f.name]), default))
    for name, parameter in keywords.items():
        fields.append((name, config_type(parameter.annotation), dataclasses.field(default=parameter.default)))
    schema = dataclasses.make_dataclass("EnvSettings", fields)
    schema.__doc__ = (
        f"The ``env`` group: ``id``, every {settings.__name__} field, and the keywords only some worlds take."
    )
    return schema


def world_arguments(env: DictConfig) -> tuple[str, dict[str, Any]]:
    """``(id, kwargs)`` of the world that ``env`` (the ``env`` node of a run's config) describes, resolved: every
    SimConfig field, and the keywords this world takes. A keyword of other worlds set to anything but its default
    is refused, naming the key and the worlds that take it: a setting is never dropped silently."""
    settings = OmegaConf.to_container(env, resolve=True, throw_on_missing=True)
    env_id = settings.pop("id")
    own = world_keywords(env_id)
    for name, parameter in WORLD_KEYWORDS.items():
        if name in own:
            continue
        value = settings.pop(name)
        if value != parameter.default:
            takers = [i for i in world_ids() if name in world_keywords(i)]
            raise ValueError(f"env.{name}={value!r}, but {env_id} does not take {name!r}; only {takers} do")
    return env_id, settings


def world_default(name: str, *, _parent_: DictConfig) -> Any:
    """The value that world ``env.id`` gives setting ``name`` when it is given none, for this config's world keywords:
    ``rating_noise: ${world_default:rating_noise}`` records the noise MovieLens fits to ``env.ratings``, and
    ``publish_rate: ${world_default:publish_rate}`` the item churn of ``FeedbackRec/News-v1`` (a default of the
    registered version, :class:`envs.domain.Version`). (A default that depends on the sizes is read at the smallest
    ones.)"""
    env_id = _parent_.id
    version_defaults = gym.spec(env_id).kwargs
    if name in version_defaults:
        return version_defaults[name]
    return _world_defaults(env_id, tuple((k, _parent_[k]) for k in world_keywords(env_id)))[name]


@cache
def _world_defaults(env_id: str, keywords: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    smallest = {"num_items": 1, "num_candidates": 1, "slate_size": 1, "num_users": 1}
    world = gym.make(env_id, item_features=None, disable_env_checker=True, **smallest, **dict(keywords))
    return dataclasses.asdict(world.unwrapped.config)


WORLD_KEYWORDS = {name: p for env_id in world_ids() for name, p in world_keywords(env_id).items()}
"""Keyword → constructor parameter, over the keywords that only some worlds take."""
EnvSettings = env_schema(SimConfig, WORLD_KEYWORDS)
ConfigStore.instance().store(name="env_schema", node=EnvSettings, package="env")
OmegaConf.register_new_resolver("world_default", world_default)
