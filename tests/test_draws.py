"""The kernels' counter-based uniform stream and the variates built on it."""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import stats

from envs.draws import draw_key, normal, uniform

MASK = 2**64 - 1


def splitmix64(key: int, position: int) -> float:
    """SplitMix64's output at ``position`` of the sequence starting at ``key``, as a uniform in (0, 1),
    in plain Python integers (the specification the compiled :func:`uniform` must meet bit for bit)."""
    z = (key + (position + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return ((z >> 11) + 0.5) * 2.0**-53


@njit
def variates(draw, key, n):
    """``n`` successive variates of ``draw`` (a helper of :mod:`envs.draws`) from ``key``'s stream."""
    out = np.empty(n)
    i = 0
    for r in range(n):
        out[r], i = draw(key, i)
    return out


def test_uniforms_are_splitmix64_bit_for_bit():
    for key in (np.uint64(0), np.uint64(2**64 - 1), draw_key(np.random.default_rng(5))):
        got = variates(uniform, key, 64)
        assert got.tolist() == [splitmix64(int(key), i) for i in range(64)], key


def test_uniforms_are_uniform_on_the_open_interval_and_keys_give_other_streams():
    rng = np.random.default_rng(0)
    first, second = variates(uniform, draw_key(rng), 200_000), variates(uniform, draw_key(rng), 200_000)
    assert 0.0 < first.min() and first.max() < 1.0
    assert stats.kstest(first, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(first[:-1], first[1:])[0, 1]) < 0.01, "neighbouring positions are correlated"
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.01, "two keys give related streams"


def test_normals_are_standard():
    values = variates(normal, draw_key(np.random.default_rng(1)), 100_000)
    assert stats.kstest(values, "norm").pvalue > 1e-3


def test_keys_come_from_the_seeded_generator():
    assert draw_key(np.random.default_rng(7)) == draw_key(np.random.default_rng(7))
    assert draw_key(np.random.default_rng(7)) != draw_key(np.random.default_rng(8))
