"""Random variates for the compiled simulation kernels, from a counter-based stream.

The kernels never own a random generator: each step the environment draws one 64-bit ``key`` from its
seeded ``numpy.random.Generator`` (``self.np_random``, see :func:`draw_key`), and the kernels read
uniforms at positions of the SplitMix64 sequence that starts at that key. A uniform is a pure function
of ``(key, position)``, so each session reads its own positions (its slice ``b·stride ...``, a range per
phase of its step: :class:`envs.dynamics.DrawLayout`) in any order, on any thread, and only the uniforms
actually used are computed. Every helper takes the key and
a position cursor ``i`` and returns the variate and the advanced cursor, so the order of consumption is
explicit and reproducible bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment and its two mixing multipliers
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11))


def draw_key(rng: np.random.Generator) -> np.uint64:
    """A fresh stream key: the next 64 raw bits of the environment's seeded generator (3x faster than
    ``rng.integers``, which matters to a single-user step)."""
    return np.uint64(rng.bit_generator.random_raw())


@njit(cache=True, _nrt=False)
def uniform(key, i):
    """The uniform at position ``i`` of ``key``'s stream, in the open interval (0, 1) (53 random bits)."""
    z = key + np.uint64(i + 1) * GOLDEN
    z = (z ^ (z >> SHIFTS[0])) * MIX1
    z = (z ^ (z >> SHIFTS[1])) * MIX2
    z ^= z >> SHIFTS[2]
    return ((z >> SHIFTS[3]) + 0.5) * 2.0**-53, i + 1


@njit(cache=True, _nrt=False)
def normal(key, i):
    """A standard normal (Box–Muller, two uniforms)."""
    a, i = uniform(key, i)
    b, i = uniform(key, i)
    return math.sqrt(-2.0 * math.log(a)) * math.cos(2.0 * math.pi * b), i


@njit(cache=True, _nrt=False)
def bernoulli(p, key, i):
    """True with probability ``p``."""
    a, i = uniform(key, i)
    return a < p, i


def geometric_log_odds(mean: float) -> float:
    """The parameter :func:`geometric` takes for a count with the given mean > 0: ``log(mean / (1 + mean))``."""
    return math.log(mean / (1.0 + mean))


@njit(cache=True, _nrt=False)
def geometric(log_odds, key, i):
    """A geometric count on {0, 1, 2, ...} (inverse CDF); ``log_odds`` from :func:`geometric_log_odds`."""
    a, i = uniform(key, i)
    return math.floor(math.log(a) / log_odds), i


@njit(cache=True, _nrt=False)
def laplace(scale, key, i):
    """A centred Laplace variate (inverse CDF)."""
    a, i = uniform(key, i)
    a -= 0.5
    return -scale * math.copysign(1.0, a) * math.log(1.0 - 2.0 * abs(a)), i


@njit(cache=True, _nrt=False)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))
