"""The domain registry: every domain by name, and its Gymnasium ids.

:func:`register_domain` records a :class:`~envs.domain.Domain` and registers one id per version,
``FeedbackRec/<title>-v<number>``, each served by the one environment class (:class:`envs.slate_env.SlateEnv`)
and the one vector class (:class:`envs.vector_env.SlateVectorEnv`) with ``kwargs={"domain": <name>, ...}``.
The built-in domains register themselves when :mod:`envs` is imported; your own register with the same call.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from envs.domain import Domain

NAMESPACE = "FeedbackRec"
MAX_EPISODE_STEPS = 200
"""Sessions made through ``gymnasium.make`` are truncated after this many steps."""

DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> list[str]:
    """Record ``domain`` and register its environment ids (one per version); returns the ids.

    Registering the same domain again is a no-op; another domain under a taken name or title is refused.
    """
    if not isinstance(domain, Domain):
        raise TypeError(f"register_domain({domain!r}); expected an envs.domain.Domain")
    known = DOMAINS.get(domain.name)
    if known is not None and known is not domain:
        raise ValueError(f"a domain named {domain.name!r} is already registered; expected a new name")
    clash = [d.name for d in DOMAINS.values() if d.title == domain.title and d is not domain]
    if clash:
        raise ValueError(f"domain {domain.name!r}: title {domain.title!r} is taken by {clash[0]!r}")
    DOMAINS[domain.name] = domain
    ids = [env_id(domain, v.number) for v in domain.versions]
    for version, id_ in zip(domain.versions, ids, strict=True):
        if id_ not in registry:
            register(
                id=id_,
                entry_point="envs.slate_env:SlateEnv",
                vector_entry_point="envs.vector_env:SlateVectorEnv",
                max_episode_steps=MAX_EPISODE_STEPS,
                kwargs={"domain": domain.name, **version.defaults},
            )
    return ids


def env_id(domain: Domain, version: int = 0) -> str:
    """``FeedbackRec/<title>-v<version>``."""
    return f"{NAMESPACE}/{domain.title}-v{version}"


def get_domain(domain: str | Domain) -> Domain:
    """The registered domain named ``domain`` (a :class:`Domain` is returned as it is)."""
    if isinstance(domain, Domain):
        return domain
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {sorted(DOMAINS)} or an envs.domain.Domain")
    return DOMAINS[domain]
