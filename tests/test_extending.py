"""Extending FeedbackRec in-process: a toy signal and a toy domain pass both environment checkers, batched too."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs import Domain, Role, Signal, SignalInfo, Topic, register_domain, register_signal
from envs.domains.news import NEWS
from envs.manual import manual
from envs.registry import get_domain

TOPICS = (Topic("red", ("apple", "cherry", "tomato")), Topic("blue", ("sky", "ocean", "denim")))


def toy_domain(seconds: int) -> Domain:
    """Read-like responses whose depth signal is the toy one (``seconds``: its kind)."""
    return Domain(
        name="toy",
        title="Toy",
        description="A user is shown coloured things and looks at one of them for a while.",
        noun="thing",
        topics=TOPICS,
        generic_words=("bright", "dull"),
        templates=("A {g} {t0} next to a {s}",),
        attributes=lambda topic, quality, rng: {"length_words": rng.uniform(100, 400, len(topic)).astype(np.float32)},
        attribute_names=("length_words",),
        response="read",
        implicit_signals=(Signal.CLICK, seconds, Signal.SHARE),
        text_signal=None,
        default_delays={"toy_seconds": 1, "rating": "geometric:2"},
        reward_weights={"click": 1.0, "toy_seconds": 0.01},
    )


@pytest.fixture
def toy(isolated_registries):
    seconds = register_signal(SignalInfo("toy_seconds", Role.DEPTH, 0.0, 100.0, binary=False, unit="seconds"))
    return seconds, register_domain(toy_domain(seconds))


def test_a_toy_signal_and_domain_pass_both_env_checkers_and_send_the_toy_signal(toy):
    seconds, ids = toy
    assert ids == ["FeedbackRec/Toy-v0"] and get_domain("toy").title == "Toy"
    check_env(gym.make("FeedbackRec/Toy-v0", num_items=50).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make("FeedbackRec/Toy-v0", num_items=50), warn=False)
    env = gym.make_vec("FeedbackRec/Toy-v0", num_envs=8, vectorization_mode="vector_entry_point", num_items=50)
    env.reset(seed=0)
    kinds, reward = [], 0.0
    for _ in range(20):
        _, r, _, _, _info = env.step(np.tile(np.arange(5), (8, 1)))
        kinds += env.unwrapped.delivered.arrived["kind"].tolist()
        reward += r.sum()
    assert seconds in kinds and reward > 0
    assert "toy_seconds (depth, 0 to 100 seconds)" in manual(get_domain("toy"))


def test_a_domain_whose_signals_do_not_fit_its_response_is_refused():
    with pytest.raises(ValueError, match=r"response 'read' fills 3 values, but implicit_signals names 2"):
        dataclasses.replace(NEWS, implicit_signals=(Signal.CLICK, Signal.SHARE))


def test_a_taken_signal_name_or_domain_title_is_refused(toy):
    with pytest.raises(ValueError, match=r"signal 'click' is already registered"):
        register_signal(SignalInfo("click", Role.ACTION))
    with pytest.raises(ValueError, match=r"a domain named 'toy' is already registered"):
        register_domain(toy_domain(toy[0]))
