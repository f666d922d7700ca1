"""E-commerce: product titles with brand and price; clicks, carts, purchases, late ratings and reviews."""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic
from envs.signals import Signal
from envs.slate_env import SlateEnv
from envs.vector_env import SlateVectorEnv

TOPICS = (
    Topic(
        "electronics",
        (
            "headphones",
            "laptop",
            "charger",
            "speaker",
            "monitor",
            "keyboard",
            "camera",
            "tablet",
            "router",
            "smartwatch",
        ),
    ),
    Topic("home", ("lamp", "cushion", "blender", "kettle", "rug", "curtains", "shelf", "vacuum", "mattress", "candle")),
    Topic(
        "fashion",
        ("sneakers", "jacket", "dress", "scarf", "boots", "jeans", "handbag", "sunglasses", "sweater", "belt"),
    ),
    Topic(
        "sports",
        (
            "yoga mat",
            "dumbbells",
            "tent",
            "bicycle helmet",
            "running shoes",
            "water bottle",
            "backpack",
            "racket",
            "skates",
            "jersey",
        ),
    ),
    Topic(
        "beauty",
        (
            "moisturiser",
            "shampoo",
            "perfume",
            "lipstick",
            "serum",
            "sunscreen",
            "hair dryer",
            "nail polish",
            "face mask",
            "razor",
        ),
    ),
    Topic(
        "toys",
        (
            "puzzle",
            "building blocks",
            "doll",
            "board game",
            "plush bear",
            "kite",
            "train set",
            "card game",
            "robot kit",
            "crayons",
        ),
    ),
    Topic(
        "books",
        (
            "novel",
            "cookbook",
            "biography",
            "atlas",
            "comic",
            "poetry collection",
            "thriller",
            "textbook",
            "journal",
            "travel guide",
        ),
    ),
    Topic(
        "grocery",
        (
            "coffee beans",
            "olive oil",
            "green tea",
            "pasta",
            "chocolate",
            "honey",
            "granola",
            "spice mix",
            "rice",
            "snack box",
        ),
    ),
)

BRANDS = ("Acme", "Nordvik", "Lumina", "Brightway", "Kestrel", "Orbit", "Maple & Co", "Zentro", "Halcyon", "Vireo")

TEMPLATES = (
    "{g} {t0} with {s} style, {T} ({price:.2f} EUR)",
    "{g} premium {t0} - {T} essentials, {price:.2f} EUR",
    "{t0} by {g}: compact, durable, pairs with {t1}. {price:.2f} EUR",
    "{g} {t0} and {t1} bundle for {s} fans ({price:.2f} EUR)",
)

PRICE_LEVEL = np.array([180.0, 60.0, 45.0, 50.0, 25.0, 30.0, 15.0, 9.0])


def attributes(topic: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Price in EUR: log-normal around the category's level, higher for better items."""
    price = PRICE_LEVEL[topic] * np.exp(0.5 * rng.standard_normal(len(topic)) + 0.15 * quality)
    return {"price": np.round(price, 2).astype(np.float32)}


ECOMMERCE = Domain(
    name="ecommerce",
    noun="product",
    topics=TOPICS,
    generic_words=BRANDS,
    templates=TEMPLATES,
    attributes=attributes,
    attribute_names=("price",),
    response="shop",
    implicit_signals=(Signal.CLICK, Signal.ADD_TO_CART, Signal.PURCHASE, Signal.PURCHASE_AMOUNT),
    text_signal=Signal.REVIEW,
    default_delays={
        "click": 0,
        "add_to_cart": 1,
        "purchase": 10,
        "purchase_amount": 10,
        "rating": "geometric:30",
        "review": "geometric:30",
    },
    reward_weights={
        "click": 0.2,
        "add_to_cart": 1.0,
        "purchase": 3.0,
        "rating": 0.5,
    },  # amount: price-confounded, unweighted
)


class EcommerceEnv(SlateEnv):
    """## Description
    A shopper browses a slate of product listings (brand, product, category, price in EUR) over eight
    hidden categories. They click at most one, may add it to the cart and buy 1–3 units; buyers
    sometimes rate the product and write a review, weeks (30 steps on average) later.

    ## Action Space
    ``MultiDiscrete([num_candidates] * slate_size)`` indexing ``obs["candidates"]``; repeats are masked
    or refused per ``duplicates``.

    ## Observation Space
    ``Dict`` with ``candidates`` ``(M,)``, ``candidate_features`` ``(M, d)`` (category one-hot + log
    price by default), ``history`` ``(H,)``, ``feedback`` ``(L, 6)`` and ``user_id`` ``(1,)``; see
    :class:`envs.news.NewsEnv` for the columns.

    ## Rewards
    ``weight * (value - neutral)`` over arrived records: click 0.2, add-to-cart 1, purchase 3,
    0.01 per EUR spent, 0.5 per star above 3. Purchases arrive 10 steps late, ratings ~30.

    ## Starting State
    A fresh session of a shopper drawn from the population (drifted interests kept across sessions).

    ## Episode End
    Terminated when the shopper's patience is spent or mood drops under their threshold; truncated at
    ``max_episode_steps``.

    ## Arguments
    ``catalog``, ``item_features`` and :class:`envs.config.SimConfig` fields, e.g. ``spam_fraction``.

    >>> import gymnasium as gym, envs
    >>> env = gym.make("FeedbackRec/Ecommerce-v0", num_items=100, slate_size=3)
    >>> _ = env.reset(seed=1)
    >>> obs, reward, terminated, truncated, info = env.step([0, 1, 2])
    >>> sorted(info)[:3]
    ['choice', 'feedback', 'impression_id']
    """

    domain = ECOMMERCE


class EcommerceVectorEnv(SlateVectorEnv):
    """:class:`EcommerceEnv` for ``num_envs`` shoppers at once."""

    domain = ECOMMERCE
