"""Bad inputs across the stack: each is refused with a message that names the bad value and what was
expected, and the command line never answers a user error with a Python traceback.

Layers: environment keyword arguments, the vector env, actions, feedback columns, catalogue files,
checkpoints, embedding caches, run settings (composed Hydra configs through ``validate()``) and the
command line (``experiments/run.py`` in a subprocess). Inputs already covered elsewhere
are not repeated here: tests/test_envs.py (``test_bad_actions_name_the_action_and_the_space``,
``test_invalid_kwargs_fail_at_construction``, ``test_duplicates_error_refuses_repeated_slots``,
``test_step_after_the_session_ended_asks_for_reset``), tests/test_vector_env.py (wrong batch shape, bad
entry in a sub-env, more sessions than users), tests/test_catalog.py (``test_malformed_tables_...``,
missing file, missing attribute), tests/test_feedback.py (delay above ``max_delay``),
tests/test_experiments.py (config typo, ``eval.episodes=0``, ``features.item_features=glove``),
tests/test_runner.py (existing checkpoints without ``resume=true``), tests/test_models.py (truncated and
bit-flipped cache, unwritable cache dir, unknown encoder) and tests/test_bert_agent.py (agent settings).

Tests marked ``xfail(strict=True)`` document bad inputs whose fix belongs to a file owned elsewhere
(the reason says where); they start to fail, as a reminder to drop the marker, once the fix lands.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.base import Task
from agents.checkpoint import MANIFEST, CheckpointError, Checkpoints
from agents.loop import run_online
from agents.random import RandomAgent
from envs import FEEDBACK_DTYPE, Catalog, as_columns, as_records
from envs.users import Population
from models.cache import EmbeddingCache
from tests.conftest import SMALL
from tests.test_experiments import composed, run
from tests.test_vector_env import make_vec

ROOT = Path(__file__).resolve().parents[1]
INF = float("inf")
NEWS = "FeedbackRec/News-v0"


# ---------------------------------------------------------------- environment keyword arguments


@pytest.mark.filterwarnings("ignore:.*is being initialised with render_mode")
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fatigue_weight": INF}, r"fatigue_weight=inf; expected a finite number"),  # made rewards NaN
        ({"privacy_epsilon": INF}, r"privacy_epsilon=inf; expected a finite number"),
        ({"reward_weights": {"click": INF}}, r"reward_weights\['click'\]=inf; expected a finite number"),
        ({"reward_weights": {"click": "high"}}, r"reward_weights\['click'\]='high'; expected a finite number"),
        ({"reward_weights": [1, 2]}, r"reward_weights=\[1, 2\]; expected a mapping of signal to weight"),
        ({"delays": [1, 2]}, r"delays=\[1, 2\]; expected 'none', a mapping of signal to delay, or None"),
        ({"delays": "fast"}, r"delays='fast'; expected 'none', a mapping"),
        ({"delays": {"rating": True}}, r"delay for 'rating' is True; expected a number of steps >= 0"),
        ({"slate_size": 2.5}, r"slate_size=2.5; expected an integer >= 1"),
        ({"num_users": True}, r"num_users=True; expected an integer >= 1"),
        ({"num_users": "abc"}, r"num_users='abc'; expected an integer >= 1"),
        ({"max_delay": -1}, r"max_delay=-1; expected an integer >= 0"),
        ({"render_mode": "human"}, r"render_mode='human'; expected None or one of \['ansi'\]"),
    ],
    ids=[
        "fatigue_weight-inf",
        "privacy_epsilon-inf",
        "reward_weight-inf",
        "reward_weight-text",
        "reward_weights-list",
        "delays-list",
        "delays-text",
        "delay-bool",
        "slate_size-float",
        "num_users-bool",
        "num_users-text",
        "max_delay-negative",
        "render_mode-human",
    ],
)
def test_bad_env_kwargs_name_the_value_and_the_expectation(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gym.make("FeedbackRec/News-v0", **{**SMALL, **kwargs})


def test_a_catalogue_smaller_than_the_candidate_set_is_refused(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("id,text\nx,Only item\n")
    with pytest.raises(ValueError, match=r"num_candidates=20 exceeds the catalog's 1 items"):
        gym.make("FeedbackRec/News-v0", catalog=Catalog.from_table(path))


def test_a_population_of_another_size_is_refused():
    population = Population(50, num_topics=3, seed=0)
    with pytest.raises(ValueError, match=r"population has 50 users over 3 topics; expected num_users=200"):
        gym.make("FeedbackRec/News-v0", population=population, **SMALL)


def test_a_path_passed_as_catalog_is_refused_naming_it():
    with pytest.raises((TypeError, ValueError), match=r"catalog='items.csv'; expected"):
        gym.make("FeedbackRec/News-v0", catalog="items.csv", **SMALL)


def test_non_numeric_item_features_are_refused_naming_the_setting():
    features = np.array([["a", "b"]] * 300, dtype=object)
    with pytest.raises(ValueError, match=r"item_features .*expected"):
        gym.make("FeedbackRec/News-v0", item_features=features, **SMALL)


# ---------------------------------------------------------------- the vector env


def test_vector_env_refuses_zero_sessions():
    with pytest.raises(ValueError, match=r"num_envs=0; expected an integer >= 1"):
        make_vec(NEWS, 0)


def test_vector_env_refuses_a_render_mode():
    with pytest.raises(ValueError, match=r"render_mode='rgb_array'; the vector env does not render"):
        make_vec(NEWS, 2, render_mode="rgb_array")


def test_repeated_slot_in_a_batch_names_the_sub_env():
    vec = make_vec(NEWS, 3, duplicates="error")
    vec.reset(seed=0)
    slates = np.tile(np.arange(5), (3, 1))
    slates[2, 4] = 1
    with pytest.raises(ValueError, match=r"repeats candidate 1 at position 4 \(sub-env 2\)"):
        vec.step(slates)


# ---------------------------------------------------------------- actions


@pytest.mark.parametrize(
    ("action", "match"),
    [
        ([[0, 1, 2, 3, 4], [0, 1, 2]], r"is not a rectangular array; expected shape \(2, 5\)"),  # was numpy's error
        (np.array([[2**63 + 5, 1, 2, 3, 4]] * 2, np.uint64), r"entry 9223372036854775813 at position 0"),  # wrapped
        ([[1e300, 1, 2, 3, 4]] * 2, r"entry 1e\+300 at position 0; expected values in \[0, 19\]"),
        ([[np.nan, 1, 2, 3, 4]] * 2, r"dtype float64; expected integers"),
        ([[True, False, True, False, True]] * 2, r"dtype bool; expected integers"),
        (None, r"action None has shape \(\); expected \(2, 5\)"),
    ],
    ids=["ragged", "uint64-overflow", "huge-float", "nan", "bool", "none"],
)
def test_bad_batched_actions_name_the_action_and_the_space(action, match):
    vec = make_vec(NEWS, 2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=match) as error:
        vec.step(action)
    assert "MultiDiscrete([20] * 5)" in str(error.value)


def test_feedback_columns_of_a_slice_convert_to_that_slice():
    records = np.zeros(3, FEEDBACK_DTYPE)
    records["kind"] = [0, 1, 2]
    assert as_records(as_columns(records[1:]))["kind"].tolist() == [1, 2]


# ---------------------------------------------------------------- catalogue files


CATALOGUE_CASES = [
    (
        "latin1.csv",
        "id,text\n1,ok\n2,Caf\xe9 au lait\n".encode("latin-1"),
        r"latin1.csv, line 3: byte 0xe9 at column 6 is not UTF-8; expected a UTF-8 text file",
    ),
    ("utf16.csv", "id,text\n1,ok\n".encode("utf-16"), r"utf16.csv, line 1: byte 0xff at column 1 is not UTF-8"),
    (
        "big.csv",
        b"id,text\n1," + b"x" * 200_000 + b"\n",
        r"big.csv, line \d+: unreadable CSV \(field larger than field limit",
    ),
    ("twice.csv", b"id,text,text\n1,a,b\n", r"twice.csv, line 1: header repeats column\(s\) \['text'\]"),
    (
        "excel.csv",
        "\ufeffid,text\n1,ok\n".encode(),
        r"excel.csv, line 2: column 'id' is missing or empty \(the row has columns \['text', '\\ufeffid'\]\)",
    ),
    (
        "object.jsonl",
        b'{"id": "1", "text": {"title": "x"}}\n',
        r"object.jsonl, line 1: column 'text' is \{'title': 'x'\}; expected a string",
    ),
    (
        "gap.jsonl",
        b'{"id": "1", "text": "a", "price": 3}\n{"id": "2", "text": "b"}\n',
        r"gap.jsonl, line 2: column 'price' is missing; expected it on every line",
    ),
    (
        "flag.jsonl",
        b'{"id": "1", "text": "a", "price": true}\n',
        r"flag.jsonl, line 1: column 'price' is True; expected a finite number",
    ),
    ("empty.csv", b"", r"empty.csv, line 1: no header; expected columns id,text"),
]


@pytest.mark.parametrize(("name", "content", "match"), CATALOGUE_CASES, ids=[c[0] for c in CATALOGUE_CASES])
def test_malformed_catalogue_files_name_file_line_and_problem(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        Catalog.from_table(path)


def test_a_directory_given_as_catalogue_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"is a directory; expected a \.csv, \.jsonl or \.parquet file"):
        Catalog.from_table(tmp_path)


# ---------------------------------------------------------------- checkpoints


def write_files(files: dict[str, bytes]):
    """A checkpoint writer that puts ``files`` (name → bytes) into the checkpoint directory."""

    def write(directory: Path) -> None:
        for name, data in files.items():
            (directory / name).write_bytes(data)

    return write


def test_checkpoint_settings_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"keep=0; expected an integer >= 1"):
        Checkpoints(tmp_path, keep=0)
    with pytest.raises(ValueError, match=r"checkpoint step=-1; expected an integer >= 0"):
        Checkpoints(tmp_path).save(-1, write_files({"a": b"1"}))


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda d: (d / MANIFEST).write_text("[1, 2]"), r"manifest.json is not a mapping of file name to SHA-256"),
        (lambda d: (d / MANIFEST).write_text("{not json"), r"unreadable manifest.json"),
        (lambda d: (d / MANIFEST).write_text('{"../../x": "00"}'), r"manifest.json names '../../x', outside"),
        (lambda d: (d / "extra.npz").write_bytes(b"new"), r"\['extra.npz'\] are not in manifest.json"),
        (lambda d: (d / "state.bin").unlink(), r"state.bin is missing"),
        (lambda d: (d / "state.bin").write_bytes(b"0123456789"), r"state.bin fails its SHA-256 checksum"),
    ],
    ids=["manifest-list", "manifest-garbled", "manifest-escapes", "unlisted-file", "missing-file", "corrupt-file"],
)
def test_a_tampered_checkpoint_is_reported_and_never_loaded(tmp_path, caplog, tamper, problem):
    checkpoints = Checkpoints(tmp_path)
    path = checkpoints.save(10, write_files({"state.bin": b"0123456789" * 100}))
    tamper(path)
    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError, match=problem) as error:
        checkpoints.latest()
    assert "step_000000000010" in str(error.value) and "step_000000000010" in caplog.text


def test_resuming_into_an_env_of_another_size_names_the_mismatch(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    first = make_vec(NEWS, 4)
    run_online(RandomAgent(Task.of(first), seed=0), first, 40, checkpoints=checkpoints, progress=False)
    other = make_vec(NEWS, 2)
    with pytest.raises(ValueError, match=r"saved simulator state 'user' has shape \(4,\); expected \(2,\)"):
        run_online(RandomAgent(Task.of(other), seed=0), other, 80, checkpoints=checkpoints, progress=False)


# ---------------------------------------------------------------- embedding caches


def test_an_empty_cache_file_is_reported_and_rebuilt(tmp_path, caplog):
    cache = EmbeddingCache("m", tmp_path)
    cache.path.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(["a"])[0] is None
    assert "unusable" in caplog.text
    cache.store(["a"], np.ones((1, 2), np.float32))
    assert not cache.lookup(["a"])[1].any()


def test_another_models_cache_file_is_never_used(tmp_path, caplog):
    mine, theirs = EmbeddingCache("mine", tmp_path / "a"), EmbeddingCache("theirs", tmp_path / "b")
    theirs.store(["a"], np.ones((1, 2), np.float32))
    mine.path.write_bytes(theirs.path.read_bytes())
    with caplog.at_level(logging.WARNING):
        found, missing = mine.lookup(["a"])
    assert found is None and missing.all() and "model identity does not match" in caplog.text


def test_embeddings_of_another_width_are_refused_naming_both(tmp_path):
    cache = EmbeddingCache("m", tmp_path)
    cache.store(["a"], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"embedding width 3 differs from the cached 4"):
        cache.store(["b"], np.ones((1, 3), np.float32))


def test_texts_and_vectors_of_different_lengths_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"3 texts .* 2 vectors"):
        EmbeddingCache("m", tmp_path).store(["a", "b", "c"], np.ones((2, 4), np.float32))


def test_non_finite_embeddings_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"NaN or inf"):
        EmbeddingCache("m", tmp_path).store(["a"], np.full((1, 4), np.nan, np.float32))


# ---------------------------------------------------------------- run settings (composed configs)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("eval.seed=0", r"eval.seed=0; expected a seed other than the training seed 0"),
        ("train.checkpoint_every=-1", r"train.checkpoint_every=-1; expected an integer >= 0"),
        ("seed=-1", r"seed=-1; expected"),
        ("train.steps=abc", r"train.steps='abc'; expected"),
        ("env.id=FeedbackRec/Nope-v0", r"env.id='FeedbackRec/Nope-v0'; expected one of"),
        ("objective=nosuch", r"objective='nosuch'; expected one of"),
        ("eval.baselines=maybe", r"eval.baselines='maybe'; expected true or false"),
        ("eval.regret_sessions=-3", r"eval.regret_sessions=-3; expected an integer >= 0"),
        ("eval.stream_sessions=-1", r"eval.stream_sessions=-1; expected an integer >= 0"),
    ],
)
def test_run_settings_are_validated_before_any_work(override, match):
    with pytest.raises(ValueError, match=match):
        run.validate(composed(override))


# ---------------------------------------------------------------- the command line

TINY = [
    "agent=random",
    "train.steps=100",
    "train.num_envs=2",
    "eval.episodes=4",
    "env.num_items=300",
    "env.num_users=100",
]


def cli(directory: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``experiments/run.py`` with tiny budgets (a bad input wrongly accepted still ends fast)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), *TINY, f"hydra.run.dir={directory}", *overrides],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=600,
    )


def assert_refused(result: subprocess.CompletedProcess, match: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert re.search(match, result.stderr), result.stderr[-2000:]


CLI_CASES = [  # a bad agent setting (agent.epsilon=2): tests/test_runner.py, with these same checks
    (["train.num_envs=0"], r"error: train.num_envs=0; expected an integer >= 1"),
    (["+env.delays=[1,2]"], r"error: delays=\[1, 2\]; expected 'none', a mapping"),
    (["+env=nosuch"], r"Could not find 'env/nosuch'"),  # Hydra's own config-error style
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "match"), CLI_CASES, ids=[" ".join(o) for o, _ in CLI_CASES])
def test_cli_refuses_bad_input_without_a_traceback(tmp_path, overrides, match):
    result = cli(tmp_path, *overrides)
    assert_refused(result, match)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_cli_resume_from_a_corrupt_checkpoint_names_the_file(tmp_path):
    step = tmp_path / "checkpoints" / "step_000000000100"
    step.mkdir(parents=True)
    (step / "loop.json").write_text(json.dumps({"steps": 100}))
    (step / MANIFEST).write_text(json.dumps({"loop.json": "0" * 64}))
    result = cli(tmp_path, "resume=true")
    assert result.returncode == 2
    assert_refused(result, r"error: no intact checkpoint under .*step_000000000100: loop.json fails its SHA-256")
