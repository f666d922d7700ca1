"""Shared fixtures: every FeedbackRec environment id, small worlds for fast tests."""

from __future__ import annotations

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the environments)

ENV_IDS = sorted(spec.id for spec in gym.registry.values() if spec.id.startswith("FeedbackRec/"))
SMALL = {"num_items": 300, "num_users": 200}


@pytest.fixture(params=ENV_IDS)
def env_id(request) -> str:
    return request.param
