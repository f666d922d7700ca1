"""The step kernel's named state and its draw layout: each phase of a session's step reads its own range of the
uniform stream, and no model draws past it."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

from envs.choice import CASCADE, CHOICE_MODELS, choice_draws, choose_cascade, choose_mnl
from envs.draws import bernoulli, draw_key
from envs.dynamics import (
    CANDIDATE_DRAWS,
    DIMENSIONS,
    MISCLICK_DRAWS,
    RATE_DRAWS,
    SATISFACTION_DRAWS,
    STARS_DRAWS,
    TEXT_DRAWS,
    DrawLayout,
    SessionState,
    StepBuffers,
    StepOutput,
    _misclick,
    _satisfaction,
    _stars,
    _text,
    draw_candidates,
    specs,
)
from envs.privacy import REPORT_DRAWS, categorical_response, laplace_report, randomised_response
from envs.responses import RESPONSES, respond
from tests.conftest import SMALL

KEYS = [draw_key(np.random.default_rng(seed)) for seed in range(300)]
PARAMS = gym.make("FeedbackRec/News-v0", **SMALL).unwrapped.sim._params[0]
"""A kernel parameter record (1..5 whole stars) for the phase functions that read the rating scale."""


def choose(model, utility, masked, b, no_click, temperature, position_bias, key, i, scratch):
    """The choice of ``model`` (a value of CHOICE_MODELS), as the step kernel makes it."""
    if model == CASCADE:
        return choose_cascade(utility, masked, b, no_click, temperature, position_bias, key, i)
    return choose_mnl(utility, masked, b, no_click, temperature, key, i, scratch)


SLATE_SIZES = (1, 5, 10)


def most_draws(phase, *args) -> int:
    """The most stream positions ``phase(*args, key, i) -> (..., i)`` advanced its cursor by, over many keys."""
    start = 7
    return max(phase(*args, key, start)[-1] - start for key in KEYS)


def worst_case_choice_draws(model: int, k: int) -> int:
    """Draws of a choice over ``k`` unmasked slots that nobody wants (the cascade then scans them all)."""
    utility, masked, scratch = np.full((1, k), -50.0, np.float32), np.zeros((1, k), bool), np.empty((1, k))
    return max(choose(model, utility, masked, 0, 1.0, 1.0, 1.0, key, 3, scratch)[1] - 3 for key in KEYS)


def response_draws(number: int) -> int:
    """The most draws of one consumption under response model ``number``, over satisfactions and keys."""
    attrs, values = np.ones((1, 4), np.float32), np.empty((1, 8))
    name = next(name for name, spec in RESPONSES.items() if spec.number == number)
    constants = RESPONSES[name].constants(name)
    return max(
        respond(number, constants, satisfaction, attrs, 0, key, 3, values, 0)[2] - 3
        for satisfaction in (0.01, 0.5, 0.99)
        for key in KEYS
    )


def report_draws() -> int:
    """The most uniforms one private report reads (:mod:`envs.privacy`): any mechanism, or a text's."""
    return max(
        most_draws(randomised_response, 1.0, 0.5),
        most_draws(laplace_report, 10.0, 0.0, 20.0, 0.5),
        most_draws(categorical_response, 2, 6, 0.5),
        max(most_draws(_text, stars, PARAMS) for stars in (1.0, 5.0)),
    )


def phase_draws(choice_model: int, k: int, response: int, reports_per_slot: int) -> dict[str, int]:
    """The most uniforms each phase of a step reads, measured on the compiled phase functions."""
    masked = np.zeros((1, k), bool)
    candidates, progression = np.empty((1, 20), np.int64), np.empty((1, 2), np.int64)
    strides = np.array([1, 3, 7], np.int64)
    return {
        "choice": worst_case_choice_draws(choice_model, k),
        "misclick": most_draws(_misclick, 0, 1.0, masked, 0),  # always slips: both draws
        "satisfaction": most_draws(_satisfaction, 1.0, 0.5),
        "response": response_draws(response),
        "rate": most_draws(bernoulli, 0.5),
        "stars": max(most_draws(_stars, 0.7, 0.2, spam, PARAMS) for spam in (False, True)),
        "text": max(most_draws(_text, stars, PARAMS) for stars in (1.0, 5.0)),
        "reports": k * reports_per_slot * report_draws(),
        "candidates": max(draw_candidates(candidates, progression, 0, 20, strides, key, 3) - 3 for key in KEYS),
    }


@pytest.mark.parametrize("choice_model", sorted(CHOICE_MODELS))
@pytest.mark.parametrize("response", sorted(RESPONSES))
@pytest.mark.parametrize("k", SLATE_SIZES)
def test_no_phase_draws_into_the_next_one(choice_model, response, k):
    """Every choice model, every response model and the rating path draw at most up to the next phase's offset,
    and the last phase (the candidates) ends at the session's stride: a session's phases never share a uniform,
    and sessions never share one either."""
    model, spec = CHOICE_MODELS[choice_model], RESPONSES[response]
    reports = spec.signals + 2  # a shown item's private reports: its implicit signals, its rating, its text
    layout = DrawLayout.of(model, k, spec.draws, reports)
    measured = phase_draws(model, k, spec.number, reports)
    phases = list(measured)
    assert phases == list(DrawLayout._fields[:-1]), "the layout's phases are the step's phases, in order"
    ends = [getattr(layout, phase) for phase in phases[1:]] + [layout.stride]
    for phase, end in zip(phases, ends, strict=True):
        start = getattr(layout, phase)
        assert start + measured[phase] <= end, f"{phase} draws {measured[phase]} from {start}, past {end}"
        assert start < end, f"{phase} has an empty span"


def test_each_declared_span_is_what_its_model_draws_at_most():
    """The spans are the models' true maxima (a span too small would overlap; one too large only wastes)."""
    for model in CHOICE_MODELS.values():
        for k in SLATE_SIZES:
            assert worst_case_choice_draws(model, k) == choice_draws(model, k)
    for spec in RESPONSES.values():
        assert response_draws(spec.number) == spec.draws
    measured = phase_draws(CHOICE_MODELS["mnl"], 5, RESPONSES["read"].number, 1)
    assert report_draws() == REPORT_DRAWS
    declared = {
        "misclick": MISCLICK_DRAWS,
        "satisfaction": SATISFACTION_DRAWS,
        "rate": RATE_DRAWS,
        "stars": STARS_DRAWS,
        "text": TEXT_DRAWS,
        "candidates": CANDIDATE_DRAWS,
    }
    assert {phase: measured[phase] for phase in declared} == declared


@pytest.mark.parametrize("choice_model", sorted(CHOICE_MODELS))
def test_the_kernel_reads_each_phase_at_its_named_offset(choice_model):
    """A step's choice (misclicks off), misclick (always on) and next candidates are those of the phase functions
    at ``b · stride + offset`` of the step's stream, for every session of a batch."""
    for misclick in (0.0, 1.0):
        vec = gym.make_vec(
            "FeedbackRec/News-v0",
            num_envs=8,
            vectorization_mode="vector_entry_point",
            choice_model=choice_model,
            misclick_rate=misclick,
            **SMALL,
        )
        vec.reset(seed=1)
        sim = vec.unwrapped.sim
        layout, rng = sim.draws, np.random.default_rng(2)
        people, strides, n_items = sim.world.people, sim.world.strides, sim.catalog.num_items
        for _ in range(5):
            users = sim.user.copy()
            slates = np.argsort(rng.random((8, 20)), axis=1)[:, :5]
            key = draw_key(copy.deepcopy(vec.unwrapped.np_random))  # the step's first draw is the kernel's key
            _, _, _, _, info = vec.step(slates)
            expected_candidates, progression = np.empty((8, 20), np.int64), np.empty((8, 2), np.int64)
            for b in range(8):
                base = b * layout.stride
                utility, masked = info["utility"][b : b + 1], info["masked_positions"][b : b + 1]
                person = people[users[b]]
                if misclick:
                    expected, _ = _misclick(-1, 1.0, masked, 0, key, base + layout.misclick)
                else:
                    expected, _ = choose(
                        CHOICE_MODELS[choice_model], utility, masked, 0, person["no_click"], person["temperature"],
                        sim.config.position_bias, key, base + layout.choice, np.empty((1, 5)),
                    )  # fmt: skip
                assert info["choice"][b] == expected, (b, misclick)
                draw_candidates(expected_candidates, progression, b, n_items, strides, key, base + layout.candidates)
            ended = info.get("_final_obs", np.zeros(8, bool))
            observed = vec.unwrapped.sim.candidates
            assert np.array_equal(observed[~ended], expected_candidates[~ended])


def test_session_state_is_allocated_and_checkpointed_from_its_definition():
    """Every SessionState field is an attribute of the simulator shaped and filled as its Spec says, and a
    checkpoint holds each by name; one lacking a field is refused naming it."""
    env = gym.make("FeedbackRec/News-v0", **SMALL)
    sim = env.unwrapped.sim
    for group in (SessionState, StepOutput, StepBuffers):
        for spec in specs(group).values():
            assert all(d in DIMENSIONS for d in spec.shape if isinstance(d, str))
    state = sim.state
    for name, spec in specs(SessionState).items():
        array = getattr(sim, name)
        assert getattr(state, name) is array, name
        assert array.dtype == np.dtype(spec.dtype) and array.shape == spec.shape_for(sim.dims), name
        assert (array == spec.fill).all(), name
    env.reset(seed=0)
    saved = sim.state_dict()
    assert set(SessionState._fields) <= set(saved)
    del saved["carried"]
    with pytest.raises(ValueError, match=r"lacks \['carried'\]; expected every field of SessionState"):
        sim.load_state_dict(saved)
