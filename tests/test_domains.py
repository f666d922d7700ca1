"""Domains as data: one registered id per domain and version served by the one env class and the one vector
class, a manual written from each domain's data, and the README's domain table read from the same data."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import gymnasium as gym
import pytest

import envs
from envs.manual import manual
from envs.registry import DOMAINS, env_id
from envs.signals import SIGNALS, Role

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_domain_registers_each_version_with_the_one_env_class(name):
    domain = DOMAINS[name]
    for version in domain.versions:
        spec = gym.spec(env_id(domain, version.number))
        assert (
            spec.entry_point == "envs.slate_env:SlateEnv"
            and spec.vector_entry_point == "envs.vector_env:SlateVectorEnv"
        )
        assert spec.kwargs["domain"] == name and spec.max_episode_steps == envs.MAX_EPISODE_STEPS
        assert type(gym.make(spec.id, num_items=60, item_features=None).unwrapped) is envs.SlateEnv


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_each_domains_manual_is_written_from_its_data(name):
    domain = DOMAINS[name]
    text = importlib.import_module(f"envs.domains.{name}").__doc__
    assert manual(domain) in text
    for signal, weight in domain.reward_weights.items():
        assert re.search(rf"\b{signal} {weight:g}\b", text), f"{signal} {weight:g} missing from the {name} manual"
    for kind in domain.implicit_signals:
        assert f"{SIGNALS.name(kind)} ({SIGNALS.info(kind).role.value}" in text
    assert all(f"v{v.number}: {v.changes}" in text for v in domain.versions)


def test_the_readme_domain_table_lists_each_generated_domains_signals():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| domain | implicit signals |") :].split("\n\n")[0].splitlines()[2:]
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in table}
    generated = sorted(name for name, d in DOMAINS.items() if d.world is None)
    assert sorted(rows) == generated
    for name in generated:
        listed = [s.strip() for s in rows[name].split(",")]
        assert listed == [SIGNALS.name(k) for k in DOMAINS[name].implicit_signals], name


def test_explicit_signals_are_the_rating_and_text_roles():
    explicit = {SIGNALS.name(k) for k in range(SIGNALS.count) if SIGNALS.explicit[k]}
    assert explicit == {SIGNALS.name(k) for k in SIGNALS.with_role(Role.RATING, Role.TEXT)}
