"""Shared fixtures: every FeedbackRec environment id, small worlds for fast tests, and registries restored after a
test that extends them; the Hypothesis profile."""

from __future__ import annotations

import contextlib
import os

import gymnasium as gym
import pytest
from hypothesis import settings

import envs  # noqa: F401  (registers the environments)
from envs.registry import DOMAINS
from envs.signals import SIGNALS

ENV_IDS = sorted(spec.id for spec in gym.registry.values() if spec.id.startswith("FeedbackRec/"))
SMALL = {"num_items": 300, "num_users": 200}


@pytest.fixture(params=ENV_IDS)
def env_id(request) -> str:
    return request.param


@contextlib.contextmanager
def restored_registries():
    """Undo, on exit, every signal, domain and environment id registered inside (a test or a README example that
    extends FeedbackRec must not leak into the tests that run after it in the same process)."""
    ids, domains, signals = set(gym.registry), dict(DOMAINS), SIGNALS.count
    try:
        yield
    finally:
        for env_id in set(gym.registry) - ids:
            del gym.registry[env_id]
        DOMAINS.clear()
        DOMAINS.update(domains)
        del SIGNALS._rows[signals:]  # the table's rows, in kind order; the arrays are rebuilt from them
        SIGNALS._refresh()


@pytest.fixture
def isolated_registries():
    with restored_registries():
        yield


# Property tests draw the same examples on every run and machine (a failure reproduces by rerunning it), and
# keep no example database between runs. HYPOTHESIS_PROFILE=explore searches afresh each run.
settings.register_profile("reproducible", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
