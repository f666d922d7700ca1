"""How users respond to what they consume: the compiled response models of the built-in domains.

A response model turns one consumption into the domain's implicit signals. Signature:
``(satisfaction, attrs, item, key, i, values, b) -> (engagement, may_rate, i)``, where ``satisfaction`` is
in (0, 1), ``attrs[item]`` holds the item's values of the domain's ``attribute_names``, ``key``/``i`` are
the uniform stream and cursor (:mod:`envs.draws`), and row ``b`` of ``values``
``(B, ≥ len(implicit_signals))`` is filled in the domain's signal order. It returns the fraction of the
item consumed (which costs session time), whether the user may go on to rate it, and the cursor. A new
model is added here, dispatched in :func:`respond` and named in :data:`RESPONSES` with the number of values it
fills and the most uniforms one consumption reads (its span in the step's draw layout,
:class:`envs.dynamics.DrawLayout`; a test checks it).
"""

from __future__ import annotations

from typing import NamedTuple

from numba import njit

from envs.draws import bernoulli, normal


@njit(cache=True, _nrt=False)
def read(satisfaction, attrs, item, key, i, values, b):
    """Readers read a share of the article that grows with satisfaction (≈4 words/s); some share it.
    ``attrs``: length_words; ``values``: click, dwell seconds, share."""
    noise, i = normal(key, i)
    read = min(max(satisfaction + 0.15 * noise, 0.02), 1.0)
    share, i = bernoulli(0.15 * satisfaction**3, key, i)
    values[b, 0], values[b, 1], values[b, 2] = 1.0, read * attrs[item, 0] / 4.0, share
    return read, True, i


@njit(cache=True, _nrt=False)
def shop(satisfaction, attrs, item, key, i, values, b):
    """Shoppers cart what they like; a share of carts is bought, 1–3 units; only buyers may rate. Price
    sets the amount, not the odds (a price effect belongs in the hidden utility, where the oracle sees it).
    ``attrs``: price; ``values``: click, add-to-cart, purchase, amount (EUR)."""
    cart, i = bernoulli(0.6 * satisfaction**2, key, i)
    buy, i = bernoulli(0.35 + 0.5 * satisfaction, key, i)
    extra1, i = bernoulli(0.15, key, i)
    extra2, i = bernoulli(0.15, key, i)
    purchase = cart and buy
    values[b, 0], values[b, 1], values[b, 2] = 1.0, cart, purchase
    values[b, 3] = attrs[item, 0] * (1 + extra1 + extra2) if purchase else 0.0
    return 0.3 + 0.7 * satisfaction, purchase, i


@njit(cache=True, _nrt=False)
def listen(satisfaction, attrs, item, key, i, values, b):
    """Listeners play the track and keep listening in proportion to satisfaction; under 30% is a skip.
    ``attrs``: duration_seconds; ``values``: play, listen fraction, skip, like."""
    noise, i = normal(key, i)
    listen = min(max(satisfaction + 0.2 * noise, 0.0), 1.0)
    like, i = bernoulli(0.25 * satisfaction**2, key, i)
    values[b, 0], values[b, 1], values[b, 2], values[b, 3] = 1.0, listen, listen < 0.3, like
    return listen, True, i


@njit(cache=True, _nrt=False)
def watch(satisfaction, attrs, item, key, i, values, b):
    """Viewers watch a share that grows with satisfaction; ≥ 90% watched is a completion.
    ``attrs``: duration_seconds; ``values``: click, watch fraction, completion, like."""
    noise, i = normal(key, i)
    watch = min(max(satisfaction + 0.2 * noise, 0.01), 1.0)
    like, i = bernoulli(0.2 * satisfaction**2, key, i)
    values[b, 0], values[b, 1], values[b, 2], values[b, 3] = 1.0, watch, watch >= 0.9, like
    return watch, True, i


class ResponseModel(NamedTuple):
    """A response model as the kernel knows it."""

    number: int  # what :func:`respond` dispatches on
    draws: int  # the most uniforms one consumption reads
    signals: int  # how many values it fills: a domain using it names that many implicit signals


READ, SHOP, LISTEN, WATCH = range(4)
RESPONSES = {
    "read": ResponseModel(READ, draws=3, signals=3),
    "shop": ResponseModel(SHOP, draws=4, signals=4),
    "listen": ResponseModel(LISTEN, draws=3, signals=4),
    "watch": ResponseModel(WATCH, draws=3, signals=4),
}


@njit(cache=True, _nrt=False)
def respond(model, satisfaction, attrs, item, key, i, values, b):
    """Dispatch to the response model numbered ``model`` (a ``number`` of :data:`RESPONSES`)."""
    if model == READ:
        return read(satisfaction, attrs, item, key, i, values, b)
    if model == SHOP:
        return shop(satisfaction, attrs, item, key, i, values, b)
    if model == LISTEN:
        return listen(satisfaction, attrs, item, key, i, values, b)
    return watch(satisfaction, attrs, item, key, i, values, b)
