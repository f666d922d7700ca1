"""E-commerce: product titles with brand and price; clicks, carts, purchases, late ratings and reviews.

>>> import gymnasium as gym, envs
>>> env = gym.make("FeedbackRec/Ecommerce-v0", num_items=100, slate_size=3)
>>> _ = env.reset(seed=1)
>>> obs, reward, terminated, truncated, info = env.step([0, 1, 2])
>>> sorted(info)[:3]
['choice', 'feedback', 'impression_id']
"""

from __future__ import annotations

import numpy as np

from envs.domain import Domain, Topic, Version
from envs.manual import manual
from envs.registry import register_domain
from envs.signals import Signal

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
    title="Ecommerce",
    description=(
        "A shopper browses a slate of product listings (brand, product, category, price in EUR) over eight hidden"
        " categories. They click at most one, may add it to the cart and buy 1–3 units; buyers sometimes rate the"
        " product and write a review, long after the purchase."
    ),
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
    tick_seconds=30.0,
    versions=(
        Version(0, "Initial release: a static catalogue."),
        Version(
            1,
            "Products are listed daily (144 a day, their appeal halving over two weeks, 40,320 ticks); the funnel and "
            "the session length follow the OTTO RecSys dataset (clicks to carts 8.7%, to orders 2.6%, 16.8 events "
            "a session).",
            {
                "publish_rate": 0.05,
                "freshness_half_life": 40320.0,
                "patience": 60.0,
                "response_params": {"cart_rate": 0.39, "buy_base": 0.05, "buy_slope": 0.4},
            },
        ),
    ),
)


register_domain(ECOMMERCE)
__doc__ += "\n\n" + manual(ECOMMERCE)
