"""Feedback features: what arrived about each consumed item, as fixed-width vectors with explicit masks.

An *engagement* is one shown item (an impression and a slate position) for which feedback arrived. Its
raw feedback is kept as ``values`` and ``arrived`` arrays ``(..., S)`` over the signal kinds of the signal table
(:data:`envs.signals.SIGNALS`, ``S = SIGNALS.count``; sizes and lists are read from the table when an agent is
built, so registered signals count too). From them:

- :func:`engagement_features` builds the columns :func:`feature_names` lists: explicit rating (normalised,
  and de-biased by the user's own mean rating, itself a feature), sentiment read from review/comment text,
  consumption depth (dwell normalised by reading time, listen/watch fractions), binary actions (share, like, cart,
  purchase, completion, skip), log purchase amount, and recency. Every signal has a value column *and*
  a mask column, so a user who never rates is told apart from one who rates badly.
- :func:`slate_labels` builds the training targets of the recommender's heads.
- :class:`TextSentiment` reads star ratings from text: the encoder's embedding of the text, then a small
  head trained on the (text, rating) pairs observed so far.
- :class:`RewardWeights` learns what each kind of feedback is worth from the step rewards.
- :class:`ItemStats` counts each item's impressions, consumptions and feedback: how often it is consumed
  when shown and what its feedback earns, shrunk toward the catalogue-wide rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from envs.signals import SIGNALS, Role, Signal

WORDS_PER_SECOND = 4.0
"""Typical adult reading speed (about 240 words a minute): ``length_words / 4`` seconds reads an article."""
RATING_PRIOR = 2.0
"""Pseudo-ratings at the global mean added to a user's own when estimating their mean rating."""
LOG_SCALE = math.log1p(1000.0)
"""Log-scaled amounts (money) and ages (steps) are divided by ``log1p(1000)``, so 1000 maps to 1."""


def feature_names() -> tuple[str, ...]:
    """The columns of :func:`engagement_features`, one value and one mask per action and amount signal of the
    signal table."""
    return (
        "rating_debiased",
        "rating",
        "rating_mask",
        "user_rating",
        "sentiment",
        "sentiment_mask",
        "depth",
        "depth_mask",
        *(name for kind in SIGNALS.with_role(Role.ACTION) for name in (_name(kind), f"{_name(kind)}_mask")),
        *(name for kind in SIGNALS.with_role(Role.AMOUNT) for name in (f"log_{_name(kind)}", f"{_name(kind)}_mask")),
        "consumed",
        "recency",
    )


USER_RATING = 3
"""The column of the user's own mean rating in :func:`feature_names`."""


def _name(kind: int) -> str:
    return SIGNALS.name(kind)


def item_seconds(catalog) -> np.ndarray:
    """``(num_items,)`` seconds an item takes to read in full (``length_words`` / reading speed), NaN
    for catalogues without lengths."""
    length = catalog.attributes.get("length_words")
    if length is None:
        return np.full(catalog.num_items, np.nan, np.float32)
    return (np.asarray(length, np.float32) / WORDS_PER_SECOND).astype(np.float32)


def consumption_depth(values: np.ndarray, arrived: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much of each item was consumed, in [0, 1], and whether it is known.

    Args:
        values, arrived: ``(..., S)`` raw feedback.
        seconds: ``(...)`` full reading time of each item (NaN when unknown).

    Returns ``(depth, known)``, both ``(...)``: the first arrived depth signal (:data:`envs.signals.DEPTH`),
    a fraction as it is, seconds divided by the item's reading time.
    """
    full = np.where(np.isfinite(seconds) & (seconds > 0), seconds, np.nan)
    depth = np.zeros(values.shape[:-1], np.float32)
    known = np.zeros(values.shape[:-1], bool)
    for kind in SIGNALS.with_role(Role.DEPTH):
        value = values[..., kind] / full if SIGNALS.info(kind).unit == "seconds" else values[..., kind]
        use = arrived[..., kind] & ~known & np.isfinite(value)
        depth[use] = np.clip(value[use], 0.0, 1.0)
        known |= use
    return depth, known


def engagement_features(
    values: np.ndarray,
    arrived: np.ndarray,
    valid: np.ndarray,
    sentiment: np.ndarray,
    seconds: np.ndarray,
    age: np.ndarray,
    global_rating: float,
) -> np.ndarray:
    """The features ``(N, P, F)`` float32 (columns :func:`feature_names`) of ``P`` engagements of each of ``N`` users.

    Args:
        values, arrived: ``(N, P, S)`` raw feedback per engagement.
        valid: ``(N, P)`` bool, real engagements (others give zero rows).
        sentiment: ``(N, P)`` stars read from the engagement's text, NaN when it has none.
        seconds: ``(N, P)`` reading time of the item in seconds (NaN when unknown).
        age: ``(N, P)`` steps between the impression and now.
        global_rating: mean star rating over all users, the prior of each user's mean.
    """
    rated = arrived[..., Signal.RATING] & valid
    stars = np.where(rated, values[..., Signal.RATING], 0.0)
    user_mean = (stars.sum(-1, keepdims=True) + RATING_PRIOR * global_rating) / (
        rated.sum(-1, keepdims=True) + RATING_PRIOR
    )
    has_text = np.isfinite(sentiment)
    depth, depth_known = consumption_depth(values, arrived, seconds)
    out = np.empty((*valid.shape, len(feature_names())), np.float32)
    out[..., 0] = np.where(rated, (stars - user_mean) / 2.0, 0.0)
    out[..., 1] = np.where(rated, (stars - 3.0) / 2.0, 0.0)
    out[..., 2] = rated
    out[..., 3] = (user_mean - 3.0) / 2.0
    out[..., 4] = np.where(has_text, (np.nan_to_num(sentiment, nan=3.0) - 3.0) / 2.0, 0.0)
    out[..., 5] = has_text
    out[..., 6] = depth
    out[..., 7] = depth_known
    column = 8
    actions, amounts = (list(SIGNALS.with_role(role)) for role in (Role.ACTION, Role.AMOUNT))
    for kinds, scale in ((actions, None), (amounts, LOG_SCALE)):  # a value and a mask column per signal
        got = arrived[..., kinds]
        value = values[..., kinds] if scale is None else np.log1p(np.maximum(values[..., kinds], 0.0)) / scale
        out[..., column : column + 2 * len(kinds) : 2] = np.where(got, value, 0.0)
        out[..., column + 1 : column + 2 * len(kinds) : 2] = got
        column += 2 * len(kinds)
    out[..., column] = arrived[..., list(SIGNALS.with_role(Role.CONSUMPTION))].any(-1)
    out[..., column + 1] = np.log1p(np.maximum(age, 0)) / LOG_SCALE
    out *= valid[..., None]
    return out


def slate_labels(
    values: np.ndarray, arrived: np.ndarray, seconds: np.ndarray, worth: np.ndarray
) -> dict[str, np.ndarray]:
    """Targets ``(N, K)`` for the shown items of ``N`` slates, each with a ``<name>_mask``.

    Args:
        values, arrived: ``(N, K, S)`` raw feedback of each slate position.
        seconds: ``(N, K)`` reading time of each item (NaN when unknown).
        worth: ``(S,)`` reward per unit of each signal (see :class:`RewardWeights`).

    ``click``: 1 if the item was consumed (any feedback arrived), else 0 — always labelled; whether an
    impression is old enough to count its silence as a negative is the sampler's choice. ``value``: the
    reward its arrived feedback earned, on consumed items. ``rating``: stars, where rated. ``depth``:
    consumed share, where known. ``purchase``: 1 if the item was bought (a positive purchase arrived), else 0 —
    always labelled.
    """
    consumed = arrived.any(-1)
    depth, depth_known = consumption_depth(values, arrived, seconds)
    rated = arrived[..., Signal.RATING]
    return {
        "click": consumed.astype(np.float32),
        "click_mask": np.ones_like(consumed),
        "value": feedback_value(values, arrived, worth),
        "value_mask": consumed,
        "rating": np.where(rated, values[..., Signal.RATING], 0.0).astype(np.float32),
        "rating_mask": rated,
        "depth": depth,
        "depth_mask": depth_known,
        "purchase": bought(values, arrived).astype(np.float32),
        "purchase_mask": np.ones_like(consumed),
    }


def bought(values: np.ndarray, arrived: np.ndarray) -> np.ndarray:
    """``(...)`` bool: the shown items whose arrived feedback ``(..., S)`` holds a purchase with a value > 0."""
    return arrived[..., Signal.PURCHASE] & (values[..., Signal.PURCHASE] > 0)


def feedback_value(values: np.ndarray, arrived: np.ndarray, worth: np.ndarray) -> np.ndarray:
    """``(...)`` float32 reward earned by the arrived feedback ``(..., S)``: Σ worth·(value − neutral)."""
    gain = np.where(arrived, worth * (values - SIGNALS.neutral), 0.0)
    return gain.sum(-1).astype(np.float32)


class RewardWeights:
    """The environment's reward per unit of each feedback kind, learnt from the rewards of the steps.

    A step's reward is linear in the feedback that arrived during it,
    ``r_b = Σ_{records of session b} w[kind] · (value − neutral[kind])``, so ``w`` ``(S,)`` is the
    least-squares solution over the steps seen so far (ridge ``ridge`` keeps never-seen kinds at 0).
    This attributes every unit of reward to the shown item whose feedback earned it.
    """

    def __init__(self, ridge: float = 1e-3) -> None:
        self.ridge = ridge
        self.gram = np.zeros((SIGNALS.count, SIGNALS.count))
        self.moment = np.zeros(SIGNALS.count)
        self.weights = np.zeros(SIGNALS.count, np.float32)

    def observe(self, records: np.ndarray, reward: np.ndarray) -> None:
        """Add one step: the records ``info["feedback"]`` that arrived in it and the ``(B,)`` rewards."""
        design = np.zeros((len(reward), len(self.moment)))
        kinds = records["kind"].astype(np.int64)
        np.add.at(design, (records["env_index"], kinds), records["value"] - SIGNALS.neutral[kinds])
        self.gram += design.T @ design
        self.moment += design.T @ reward
        ridge = self.ridge * np.eye(len(self.moment))
        self.weights = np.linalg.solve(self.gram + ridge, self.moment).astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"gram": self.gram, "moment": self.moment, "weights": self.weights}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.gram, self.moment, self.weights = state["gram"], state["moment"], state["weights"]


ITEM_PRIOR = 10.0
"""Pseudo-impressions at the catalogue-wide rates added to each item's own counts."""
ITEM_STATS = ("consumed_logit", "value_rate")


class ItemStats:
    """What each item's own feedback says so far (empirical Bayes, for the items of a catalogue).

    Counts impressions, consumptions (click or play records) and the feedback of each item. Its
    features (:data:`ITEM_STATS`) are the logit of the consumption rate per impression and the reward
    earned per impression relative to the catalogue's average, both shrunk toward the catalogue-wide
    rates with :data:`ITEM_PRIOR` pseudo-impressions (so rarely shown items stay near the average; raw
    counts, which only grow, are left out so that old and new impressions look alike).

    Args:
        num_items: catalogue size.
    """

    def __init__(self, num_items: int) -> None:
        self.shown = np.zeros(num_items)
        self.consumed = np.zeros(num_items)
        self.feedback = np.zeros((num_items, SIGNALS.count))

    def forget(self, items: np.ndarray) -> None:
        """New items in the slots ``items`` ``(n,)``: no impressions, consumptions or feedback yet."""
        self.shown[items], self.consumed[items], self.feedback[items] = 0.0, 0.0, 0.0

    def count_shown(self, items: np.ndarray) -> None:
        """Count one impression of each of ``items`` (any shape)."""
        np.add.at(self.shown, items.ravel(), 1.0)

    def count_feedback(self, records: np.ndarray) -> None:
        """Add arrived ``records`` (:data:`envs.feedback.FEEDBACK_DTYPE`) to their items' counts."""
        kinds = records["kind"].astype(np.int64)
        consumption = np.isin(kinds, SIGNALS.with_role(Role.CONSUMPTION))  # by value: 1 each, unless estimated
        np.add.at(self.consumed, records["item_index"][consumption], records["value"][consumption])
        np.add.at(self.feedback, (records["item_index"], kinds), records["value"] - SIGNALS.neutral[kinds])

    def features(self, items: np.ndarray, worth: np.ndarray) -> np.ndarray:
        """:data:`ITEM_STATS` ``(*items.shape, 2)`` float32 of ``items``, valuing feedback at ``worth`` ``(S,)``."""
        total = max(self.shown.sum(), 1.0)
        rate = (self.consumed.sum() + 1.0) / (total + 2.0)
        value = self.feedback.sum(0) @ worth / total
        shown = self.shown[items]
        consumed = np.clip((self.consumed[items] + ITEM_PRIOR * rate) / (shown + ITEM_PRIOR), 1e-4, 1 - 1e-4)
        earned = (self.feedback[items] @ worth + ITEM_PRIOR * value) / (shown + ITEM_PRIOR)
        columns = [np.log(consumed / (1.0 - consumed)), earned / max(abs(value), 1e-3)]
        return np.stack(columns, axis=-1).astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"shown": self.shown, "consumed": self.consumed, "feedback": self.feedback}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.shown, self.consumed, self.feedback = state["shown"], state["consumed"], state["feedback"]


class TextSentiment:
    """Star ratings read from review and comment text.

    Each distinct text is embedded once by ``embed`` and given an id; a small head maps the embedding to
    stars and is trained on the (text, rating) pairs the agent has observed — never on hidden state.

    Args:
        embed: texts → ``(n, D)`` float32 embeddings (the agent's frozen encoder).
        dim: ``D``.
        max_texts: distinct texts remembered; later new texts get id -1 (no sentiment).
        lr: learning rate of the head.
        device: where the head runs.
    """

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        dim: int,
        max_texts: int = 100_000,
        lr: float = 1e-3,
        device: torch.device | str = "cpu",
    ) -> None:
        self.embed, self.max_texts, self.device = embed, max_texts, torch.device(device)
        self.head = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 1)).to(self.device)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=lr)
        self.ids_of: dict[str, int] = {}
        self.vectors = np.zeros((0, dim), np.float32)
        self.predicted = np.zeros(0, np.float32)

    def ids(self, texts: np.ndarray) -> np.ndarray:
        """``(n,)`` int32 ids of ``texts`` (objects: str or None), embedding the new ones; -1 for None."""
        fresh = sorted({t for t in texts.tolist() if t is not None and t not in self.ids_of})
        fresh = fresh[: max(self.max_texts - len(self.ids_of), 0)]
        if fresh:
            self.ids_of.update({t: len(self.ids_of) + i for i, t in enumerate(fresh)})
            self.vectors = np.concatenate([self.vectors, self.embed(fresh).astype(np.float32)])
            self._predict()
        return np.array([self.ids_of.get(t, -1) if t is not None else -1 for t in texts.tolist()], np.int32)

    def state_dict(self) -> dict:
        """The head, its optimiser, and the texts (in id order) with their embeddings ``(n, D)``."""
        return {
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "texts": list(self.ids_of),
            "vectors": self.vectors,
        }

    def load_state_dict(self, state) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ids_of = {t: i for i, t in enumerate(state["texts"])}
        self.vectors = np.asarray(state["vectors"], np.float32)
        self._predict()

    def stars(self, ids: np.ndarray) -> np.ndarray:
        """Stars ``ids.shape`` float32 read from the texts ``ids``; NaN where the id is -1."""
        if not len(self.predicted):
            return np.full(ids.shape, np.nan, np.float32)
        return np.where(ids >= 0, self.predicted[np.maximum(ids, 0)], np.nan).astype(np.float32)

    def fit(self, ids: np.ndarray, stars: np.ndarray) -> float:
        """One AdamW step of squared error on (text ``ids`` ``(n,)``, ``stars`` ``(n,)``) pairs; the loss."""
        x = torch.as_tensor(self.vectors[ids], device=self.device)
        target = torch.as_tensor((stars - 3.0) / 2.0, dtype=torch.float32, device=self.device)
        loss = nn.functional.mse_loss(self.head(x).squeeze(-1), target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._predict()
        return loss.item()

    def _predict(self) -> None:
        with torch.no_grad():
            normalised = self.head(torch.as_tensor(self.vectors, device=self.device)).squeeze(-1)
        self.predicted = (3.0 + 2.0 * normalised).cpu().numpy().astype(np.float32)
