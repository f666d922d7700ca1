"""How users respond to what they consume: the compiled response models of the built-in domains.

A response model turns one consumption into the domain's implicit signals. Signature:
``(params, satisfaction, attrs, item, key, i, values, b) -> (engagement, may_rate, i)``, where ``params`` holds
the model's constants (:attr:`ResponseModel.params`, in their order; a domain or a version may set its own,
:meth:`ResponseModel.constants`), ``satisfaction`` is in (0, 1), ``attrs[item]`` holds the item's values of the
domain's ``attribute_names``, ``key``/``i`` are the uniform stream and cursor (:mod:`envs.draws`), and row ``b`` of
``values`` ``(B, ≥ len(implicit_signals))`` is filled in the domain's signal order. It returns the fraction of the
item consumed (which costs session time), whether the user may go on to rate it, and the cursor. A new model is
added here, dispatched in :func:`respond` and named in :data:`RESPONSES` with the number of values it fills, the
most uniforms one consumption reads (its span in the step's draw layout, :class:`envs.dynamics.DrawLayout`; a test
checks it) and its constants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from numba import njit

from envs.draws import bernoulli, normal


@njit(cache=True, _nrt=False)
def read(params, satisfaction, attrs, item, key, i, values, b):
    """Readers read a share of the article that grows with satisfaction (≈4 words/s); some share it.
    ``params``: read_noise, share_rate (P(share) = share_rate · satisfaction³); ``attrs``: length_words;
    ``values``: click, dwell seconds, share."""
    noise, i = normal(key, i)
    read = min(max(satisfaction + params[0] * noise, 0.02), 1.0)
    share, i = bernoulli(params[1] * satisfaction**3, key, i)
    values[b, 0], values[b, 1], values[b, 2] = 1.0, read * attrs[item, 0] / 4.0, share
    return read, True, i


@njit(cache=True, _nrt=False)
def shop(params, satisfaction, attrs, item, key, i, values, b):
    """Shoppers cart what they like; a share of carts is bought, 1–3 units; only buyers may rate. Price
    sets the amount, not the odds (a price effect belongs in the hidden utility, where the oracle sees it).
    ``params``: cart_rate (P(cart) = cart_rate · satisfaction²), buy_base and buy_slope (P(buy | cart) =
    buy_base + buy_slope · satisfaction), extra_unit (each of two further units bought with this chance);
    ``attrs``: price; ``values``: click, add-to-cart, purchase, amount (EUR)."""
    cart, i = bernoulli(params[0] * satisfaction**2, key, i)
    buy, i = bernoulli(params[1] + params[2] * satisfaction, key, i)
    extra1, i = bernoulli(params[3], key, i)
    extra2, i = bernoulli(params[3], key, i)
    purchase = cart and buy
    values[b, 0], values[b, 1], values[b, 2] = 1.0, cart, purchase
    values[b, 3] = attrs[item, 0] * (1 + extra1 + extra2) if purchase else 0.0
    return 0.3 + 0.7 * satisfaction, purchase, i


@njit(cache=True, _nrt=False)
def listen(params, satisfaction, attrs, item, key, i, values, b):
    """Listeners play the track and keep listening in proportion to satisfaction; a play cut short is a skip.
    ``params``: listen_noise, like_rate (P(like) = like_rate · satisfaction²), skip_below (a listen fraction
    under it is a skip); ``attrs``: duration_seconds; ``values``: play, listen fraction, skip, like."""
    noise, i = normal(key, i)
    listen = min(max(satisfaction + params[0] * noise, 0.0), 1.0)
    like, i = bernoulli(params[1] * satisfaction**2, key, i)
    values[b, 0], values[b, 1], values[b, 2], values[b, 3] = 1.0, listen, listen < params[2], like
    return listen, True, i


@njit(cache=True, _nrt=False)
def watch(params, satisfaction, attrs, item, key, i, values, b):
    """Viewers watch a share that grows with satisfaction; a long enough watch is a completion.
    ``params``: watch_noise, like_rate (P(like) = like_rate · satisfaction²), complete_at (the watch fraction
    that completes); ``attrs``: duration_seconds; ``values``: click, watch fraction, completion, like."""
    noise, i = normal(key, i)
    watch = min(max(satisfaction + params[0] * noise, 0.01), 1.0)
    like, i = bernoulli(params[1] * satisfaction**2, key, i)
    values[b, 0], values[b, 1], values[b, 2], values[b, 3] = 1.0, watch, watch >= params[2], like
    return watch, True, i


class ResponseModel(NamedTuple):
    """A response model as the kernel knows it."""

    number: int  # what :func:`respond` dispatches on
    draws: int  # the most uniforms one consumption reads
    signals: int  # how many values it fills: a domain using it names that many implicit signals
    params: Mapping[str, float]  # its constants by name, in the order it reads them, with their defaults

    def constants(self, name: str, *overrides: Mapping[str, float] | None) -> np.ndarray:
        """``(P,)`` float64 constants of this model (named ``name`` in errors): the defaults, replaced by each
        mapping of ``overrides`` in turn (a domain's, then a config's). An unknown name or a value that is not a
        finite number is refused, naming it."""
        values = dict(self.params)
        for mapping in overrides:
            for key, value in (mapping or {}).items():
                if key not in values:
                    raise ValueError(
                        f"response_params[{key!r}]: the {name!r} response has no such constant; expected some of "
                        f"{sorted(self.params)}"
                    )
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"response_params[{key!r}]={value!r}; expected a finite number")
                values[key] = float(value)
        return np.array(list(values.values()), np.float64)


READ, SHOP, LISTEN, WATCH = range(4)
RESPONSES = {
    "read": ResponseModel(READ, draws=3, signals=3, params={"read_noise": 0.15, "share_rate": 0.15}),
    "shop": ResponseModel(
        SHOP, draws=4, signals=4, params={"cart_rate": 0.6, "buy_base": 0.35, "buy_slope": 0.5, "extra_unit": 0.15}
    ),
    "listen": ResponseModel(
        LISTEN, draws=3, signals=4, params={"listen_noise": 0.2, "like_rate": 0.25, "skip_below": 0.3}
    ),
    "watch": ResponseModel(
        WATCH, draws=3, signals=4, params={"watch_noise": 0.2, "like_rate": 0.2, "complete_at": 0.9}
    ),
}


@njit(cache=True, _nrt=False)
def respond(model, params, satisfaction, attrs, item, key, i, values, b):
    """Dispatch to the response model numbered ``model`` (a ``number`` of :data:`RESPONSES`) with its constants
    ``params`` ``(P,)``."""
    if model == READ:
        return read(params, satisfaction, attrs, item, key, i, values, b)
    if model == SHOP:
        return shop(params, satisfaction, attrs, item, key, i, values, b)
    if model == LISTEN:
        return listen(params, satisfaction, attrs, item, key, i, values, b)
    return watch(params, satisfaction, attrs, item, key, i, values, b)
