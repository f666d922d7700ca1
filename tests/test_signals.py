"""One signal vocabulary: every list of signals is derived from the roles of one table."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the environments)
from envs.signals import SIGNALS, Role, Signal
from models.features import feature_names


def test_every_signal_has_one_row_and_every_role_list_comes_from_the_table():
    assert [SIGNALS.name(k) for k in range(len(Signal))] == [s.label for s in Signal]
    assert sorted(SIGNALS.with_role(*Role)) == list(range(SIGNALS.count))
    assert SIGNALS.with_role(Role.CONSUMPTION) == (Signal.CLICK, Signal.PLAY)
    assert SIGNALS.with_role(Role.DEPTH) == (Signal.DWELL_SECONDS, Signal.LISTEN_FRACTION, Signal.WATCH_FRACTION)
    actions = SIGNALS.with_role(Role.ACTION)
    assert Signal.PURCHASE in actions and Signal.RATING not in actions
    assert [Signal(i) for i in np.flatnonzero(SIGNALS.explicit)] == [Signal.RATING, Signal.REVIEW, Signal.COMMENT]
    for kind in actions:
        assert kind.label in feature_names() and f"{kind.label}_mask" in feature_names()


@pytest.mark.parametrize("which", ["explicit", "implicit"])
def test_a_reward_restricted_to_explicit_or_implicit_signals_counts_no_other(which):
    env = gym.make("FeedbackRec/News-v0", num_items=200, reward_signals=which, reward_weights={"dwell_seconds": 1.0})
    weights = env.unwrapped.sim.reward_weight
    mask = SIGNALS.reward_mask(which)
    assert (weights[~mask] == 0).all() and (weights[mask] != 0).any()
    assert SIGNALS.reward_mask("all").all()
    assert (SIGNALS.reward_mask("explicit") == ~SIGNALS.reward_mask("implicit")).all()


def test_an_unknown_reward_selection_is_named():
    expected = r"reward_signals='behaviour'; expected one of \('all', 'explicit', 'implicit'\)"
    with pytest.raises(ValueError, match=expected):
        gym.make("FeedbackRec/News-v0", num_items=200, reward_signals="behaviour")
