"""How users respond to what they consume: the compiled response models of the built-in domains.

A response model turns one consumption into the domain's implicit signals. Signature:
``(satisfaction, item, u, i, values) -> (engagement, may_rate, i)``, where ``satisfaction`` is in (0, 1),
``item`` holds the domain's ``attribute_names`` values, ``u``/``i`` are the uniform block and cursor
(:mod:`envs.draws`; at most 6 uniforms), and ``values`` ``(len(implicit_signals),)`` is filled in the
domain's signal order. It returns the fraction of the item consumed (which costs session time), whether
the user may go on to rate it, and the cursor. A new model is added here and named in :data:`RESPONSES`.
"""

from __future__ import annotations

from numba import njit

from envs.draws import bernoulli, normal


@njit(cache=True)
def read(satisfaction, item, u, i, values):
    """Readers read a share of the article that grows with satisfaction (≈4 words/s); some share it.
    ``item``: ``(length_words,)``; ``values``: click, dwell seconds, share."""
    noise, i = normal(u, i)
    read = min(max(satisfaction + 0.15 * noise, 0.02), 1.0)
    share, i = bernoulli(0.15 * satisfaction**3, u, i)
    values[0], values[1], values[2] = 1.0, read * item[0] / 4.0, share
    return read, True, i


@njit(cache=True)
def shop(satisfaction, item, u, i, values):
    """Shoppers cart what they like; a share of carts is bought, 1–3 units; only buyers may rate. Price
    sets the amount, not the odds (a price effect belongs in the hidden utility, where the oracle sees it).
    ``item``: ``(price,)``; ``values``: click, add-to-cart, purchase, amount (EUR)."""
    cart, i = bernoulli(0.6 * satisfaction**2, u, i)
    buy, i = bernoulli(0.35 + 0.5 * satisfaction, u, i)
    extra1, i = bernoulli(0.15, u, i)
    extra2, i = bernoulli(0.15, u, i)
    purchase = cart and buy
    values[0], values[1], values[2] = 1.0, cart, purchase
    values[3] = item[0] * (1 + extra1 + extra2) if purchase else 0.0
    return 0.3 + 0.7 * satisfaction, purchase, i


@njit(cache=True)
def listen(satisfaction, item, u, i, values):
    """Listeners play the track and keep listening in proportion to satisfaction; under 30% is a skip.
    ``item``: ``(duration_seconds,)``; ``values``: play, listen fraction, skip, like."""
    noise, i = normal(u, i)
    listen = min(max(satisfaction + 0.2 * noise, 0.0), 1.0)
    like, i = bernoulli(0.25 * satisfaction**2, u, i)
    values[0], values[1], values[2], values[3] = 1.0, listen, listen < 0.3, like
    return listen, True, i


@njit(cache=True)
def watch(satisfaction, item, u, i, values):
    """Viewers watch a share that grows with satisfaction; ≥ 90% watched is a completion.
    ``item``: ``(duration_seconds,)``; ``values``: click, watch fraction, completion, like."""
    noise, i = normal(u, i)
    watch = min(max(satisfaction + 0.2 * noise, 0.01), 1.0)
    like, i = bernoulli(0.2 * satisfaction**2, u, i)
    values[0], values[1], values[2], values[3] = 1.0, watch, watch >= 0.9, like
    return watch, True, i


RESPONSES = {"read": 0, "shop": 1, "listen": 2, "watch": 3}


@njit(cache=True)
def respond(model, satisfaction, item, u, i, values):
    """Dispatch to the response model numbered ``model`` (see :data:`RESPONSES`)."""
    if model == 0:
        return read(satisfaction, item, u, i, values)
    if model == 1:
        return shop(satisfaction, item, u, i, values)
    if model == 2:
        return listen(satisfaction, item, u, i, values)
    return watch(satisfaction, item, u, i, values)
