"""Property tests are reproducible: every run draws the same examples (the profile in tests/conftest.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent


def drawn_examples() -> list:
    seen = []

    @settings(max_examples=30)
    @given(st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
    def record(number, real, word):
        seen.append((number, real, word))

    record()
    return seen


def test_two_runs_of_a_property_test_draw_the_same_examples():
    assert drawn_examples() == drawn_examples()


def test_every_property_test_of_the_suite_is_derandomized():
    modules = [p.stem for p in sorted(TESTS.glob("test_*.py")) if "from hypothesis import" in p.read_text()]
    found = 0
    for name in modules:
        for test in vars(importlib.import_module(f"tests.{name}")).values():
            if getattr(test, "is_hypothesis_test", False):
                found += 1
                chosen = getattr(test, "_hypothesis_internal_use_settings", settings.default)
                assert chosen.derandomize and chosen.database is None, f"{name}.{test.__name__}"
    assert found >= 2
