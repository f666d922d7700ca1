"""Random variates from a block of uniforms, for the compiled simulation kernels.

The kernels never own a random generator: each step the environment draws a block of float32 uniforms
from its seeded ``numpy.random.Generator`` (``self.np_random``) and the kernels turn them into the
variates they need. Every helper takes the block ``u`` and a cursor ``i`` and returns the variate and
the advanced cursor, so the order of consumption is explicit and reproducible bit for bit.
"""

from __future__ import annotations

import math

from numba import njit

HALF_ULP = 2.0**-25  # float32 uniforms are multiples of 2^-24 in [0, 1); shift them into (0, 1)


@njit(cache=True, _nrt=False)
def uniform(u, i):
    """A uniform in the open interval (0, 1)."""
    return u[i] + HALF_ULP, i + 1


@njit(cache=True, _nrt=False)
def normal(u, i):
    """A standard normal (Box–Muller, two uniforms)."""
    a, i = uniform(u, i)
    b, i = uniform(u, i)
    return math.sqrt(-2.0 * math.log(a)) * math.cos(2.0 * math.pi * b), i


@njit(cache=True, _nrt=False)
def bernoulli(p, u, i):
    """True with probability ``p``."""
    return u[i] < p, i + 1


def geometric_log_odds(mean: float) -> float:
    """The parameter :func:`geometric` takes for a count with the given mean > 0: ``log(mean / (1 + mean))``."""
    return math.log(mean / (1.0 + mean))


@njit(cache=True, _nrt=False)
def geometric(log_odds, u, i):
    """A geometric count on {0, 1, 2, ...} (inverse CDF); ``log_odds`` from :func:`geometric_log_odds`."""
    a, i = uniform(u, i)
    return math.floor(math.log(a) / log_odds), i


@njit(cache=True, _nrt=False)
def laplace(scale, u, i):
    """A centred Laplace variate (inverse CDF)."""
    a, i = uniform(u, i)
    a -= 0.5
    return -scale * math.copysign(1.0, a) * math.log(1.0 - 2.0 * abs(a)), i


@njit(cache=True, _nrt=False)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))
