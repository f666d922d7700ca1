"""The recommender network: scores (user state, item) pairs on several feedback signals at once.

Item side: the item's text embedding (from BERT: cached, or fine-tuned) with its numeric attributes,
projected to ``dim``, plus a learnt per-item bias for every head (what text cannot say, e.g. quality).
User side, from four *sources*:

- ``item``: the item's own projected embedding and the statistics of its feedback so far (how often
  it is consumed when shown and what it earns per impression, shrunk toward the catalogue's average);
- ``profile``: the long-term user state, the embeddings of the items the user engaged with (across
  sessions), each weighted by a learnt positive function of its feedback features, with its product
  with the item;
- ``session``: the mean and the last of this session's consumed items, with their products with the item;
- ``similarity``: cosine similarities of the item's BERT embedding to the remembered engagements
  (feedback-weighted mean and maximum) and to the session (mean and last item), on the catalogue's top
  principal axes: content-based matching that needs no learnt projection, so it personalises from the
  first steps;
- ``feedback``: a summary of the user's feedback features (masked means) and engagement count.

Fusion of the sources (``fusion``):

- ``concat``: one MLP over the concatenated sources, one output layer for all heads;
- ``weighted``: one small scorer per source, outputs summed with per-source weights, learnt or fixed;
- ``multitask``: a shared trunk over the concatenated sources, then one MLP head per signal.

Heads (:data:`HEADS`): ``click`` (logit that a shown item is consumed; BCE), ``value`` (reward its
feedback earns once consumed, in units of its running scale; squared error), ``depth`` (consumed share;
BCE), ``purchase`` (logit that a shown item is bought: the conversion of the delayed-feedback literature,
whose label arrives late; BCE; never positive in a domain without purchases) — these four come out of
the fusion, each with a per-item bias — and ``rating`` (stars, as ``(stars - 3) / 2``; squared error).
Ratings are rare (a few percent of consumptions), too few to train a head of their own without
overfitting, so the rating head is a linear read-out of the other three predictions (which see every
consumption) and of the user's own mean rating. The ranking score is
the expected reward ``sigmoid(click) * value``.

The click logit starts from the item's own consumption rate: the fusion learns a residual on top of the item
statistic ``consumed_logit`` (:data:`models.features.ITEM_STATS`, the shrunk logit of its consumptions per
impression), ``click = consumed_logit + f_click``, so an untrained network already ranks items by how often they
are consumed when shown. The purchase logit inherits the same offset, as in ESMM (Ma et al. 2018, "Entire Space
Multi-Task Model", SIGIR): a purchase of a shown item needs its click, ``pCTCVR = pCTR × pCVR``, so
``log pCTCVR = log pCTR + log pCVR`` and the purchase head learns the conversion's part on top of the click
propensity (``logit p ≈ log p`` for the small rates of purchases). In a domain without purchases the purchase head
(never positive) has no offset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.features import ITEM_STATS, USER_RATING

HEADS = ("click", "value", "rating", "depth", "purchase")
FUSED_HEADS = ("click", "value", "depth", "purchase")
"""The heads the fusion predicts; ``rating`` is read out of them."""
PROPENSITY_STAT = "consumed_logit"
"""The item statistic (of :data:`models.features.ITEM_STATS`) the click and purchase logits start from."""
WHOLE_TABLE_ITEMS = 65_536
"""Catalogues up to this size are projected whole for a batch (see :meth:`RecommenderNet.embed_items`)."""
MATCH_DIM = 64
"""Principal axes of the catalogue's BERT embeddings kept for text matching (cosines at a sixth of the cost)."""
RATING_INPUTS = 5
"""Inputs of the rating read-out (see :func:`_rating_inputs`)."""
VALUE_MOMENTUM = 0.99
"""Momentum of the running mean square of value labels behind :meth:`RecommenderNet.value_scale`."""
FUSIONS = ("concat", "weighted", "multitask")
SOURCES = ("item", "profile", "session", "similarity", "feedback")


@dataclass(frozen=True)
class UserBatch:
    """Who the items are scored for, as tensors.

    Attributes:
        items: ``(N, K)`` catalogue indices to score.
        item_stats: ``(N, K, A)`` what the items' own feedback says (:class:`models.features.ItemStats`).
        history: ``(N, H)`` this session's consumed items, most recent last, -1 pads.
        memory_items: ``(N, P)`` the user's remembered engagements' items.
        memory_features: ``(N, P, F)`` their feedback features (:mod:`models.features`).
        memory_valid: ``(N, P)`` bool, real engagements.
    """

    items: torch.Tensor
    item_stats: torch.Tensor
    history: torch.Tensor
    memory_items: torch.Tensor
    memory_features: torch.Tensor
    memory_valid: torch.Tensor


class RecommenderNet(nn.Module):
    """Scores ``(N, K)`` items for ``N`` users on every head.

    Args:
        item_vectors: ``(I, D)`` text embeddings of the catalogue. The network keeps them as unit
            *matching vectors* on their top :data:`MATCH_DIM` principal axes (a buffer: refreshed by
            :meth:`set_item_vectors`, never trained), which feed both the item tower and text matching.
        item_attributes: ``(I, A)`` standardised numeric attributes.
        num_features: ``F``, width of the feedback features.
        num_item_stats: ``A``, width of the item statistics: ``len(ITEM_STATS)``, their layout (anything else is
            refused: the click offset reads its column).
        fusion: ``"concat"``, ``"weighted"`` or ``"multitask"``.
        dim: width of projected item embeddings.
        hidden: width of hidden layers.
        fusion_weights: for ``weighted``, fixed per-source weights (source name → weight); None learns them.
        purchases: whether the domain's users buy; only then does the purchase logit start from the item's
            consumption statistic, as the click logit does (see the module's docstring).
    """

    def __init__(
        self,
        item_vectors: torch.Tensor,
        item_attributes: torch.Tensor,
        num_features: int,
        num_item_stats: int,
        fusion: str = "multitask",
        dim: int = 32,
        hidden: int = 64,
        fusion_weights: Mapping[str, float] | None = None,
        purchases: bool = True,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
        if num_item_stats != len(ITEM_STATS):
            raise ValueError(
                f"num_item_stats={num_item_stats}; expected {len(ITEM_STATS)}, the item statistics {ITEM_STATS} "
                f"(the click logit starts from the column {PROPENSITY_STAT!r})"
            )
        self.fusion_mode = fusion
        item_vectors = item_vectors.float()
        self.register_buffer("item_attributes", item_attributes.float())
        match = min(MATCH_DIM, *item_vectors.shape)
        mean = item_vectors.mean(0)
        axes = torch.linalg.svd(item_vectors - mean, full_matrices=False).Vh
        self.register_buffer("match_mean", mean)
        self.register_buffer("match_basis", axes[:match].T.contiguous())
        self.register_buffer("match_table", torch.zeros(len(item_vectors), match))
        self.set_item_vectors(item_vectors)
        self.project = nn.Linear(match + item_attributes.shape[1], dim)
        self.item_bias = nn.Embedding(len(item_vectors), len(FUSED_HEADS))
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("value_moment", torch.zeros(()))
        self.register_buffer("value_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("labels_seen", torch.zeros(len(FUSED_HEADS), dtype=torch.long))
        self.rating_readout = nn.Linear(RATING_INPUTS, 1)
        self.engagement_weight = nn.Linear(num_features, 1)
        nn.init.constant_(self.engagement_weight.bias, math.log(math.e - 1.0))
        widths = {  # each source's (per pair, per user) width; a source's per-user part is shared by its K items
            "item": (dim + num_item_stats, 0),
            "profile": (dim, dim),
            "session": (2 * dim, 2 * dim),
            "similarity": (4, 0),
            "feedback": (0, num_features + 1),
        }
        self.fuse = _make_fusion(fusion, widths, hidden, fusion_weights)
        self.propensity_stat = ITEM_STATS.index(PROPENSITY_STAT)
        offset = ("click", "purchase") if purchases else ("click",)
        # not in the state_dict: a checkpoint from before the offset loads as it is
        self.register_buffer("offset_heads", torch.tensor([h in offset for h in FUSED_HEADS]).float(), persistent=False)

    @torch.no_grad()
    def set_item_vectors(self, vectors: torch.Tensor, items: np.ndarray | None = None) -> None:
        """Take new embeddings ``(n, D)`` of ``items`` ``(n,)`` (None: the whole catalogue, ``n = I``), e.g.
        re-encoded by a fine-tuned BERT, as their matching vectors on the principal axes fitted at construction."""
        matched = self.match_vectors(vectors.float())
        if items is None:
            self.match_table.copy_(matched)
        else:
            self.match_table[torch.as_tensor(items, device=matched.device)] = matched

    @torch.no_grad()
    def replace_items(self, items: torch.Tensor, vectors: torch.Tensor, attributes: torch.Tensor) -> None:
        """New items in the catalogue slots ``items`` ``(n,)``: their text embeddings ``(n, D)`` and attributes
        ``(n, A)`` enter the item table, and the slots' learnt item bias is forgotten."""
        self.match_table[items] = self.match_vectors(vectors.float())
        self.item_attributes[items] = attributes.float()
        self.item_bias.weight[items] = 0.0

    def match_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``(..., m)`` for text matching: ``vectors`` ``(..., D)`` on their top ``m`` principal axes."""
        return F.normalize((vectors - self.match_mean) @ self.match_basis, dim=-1)

    def embed_items(self, items: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
        """Projected embeddings ``(*items.shape, dim)`` of the items' matching vectors ``matched``
        ``(*items.shape, m)`` (fresh, differentiable ones while fine-tuning the encoder) and attributes."""
        return self.project(torch.cat([matched, self.item_attributes[items]], dim=-1))

    def item_lookup(self, *index: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each tensor of catalogue indices, its items' matching vectors ``(..., m)`` (a buffer: no gradient)
        and projected embeddings ``(..., dim)``. Up to :data:`WHOLE_TABLE_ITEMS` items the whole catalogue is
        projected once and gathered (cheaper than finding the distinct items), above it each distinct item is
        projected once."""
        if len(self.match_table) <= WHOLE_TABLE_ITEMS:
            matched, projected = self.match_table, self.embed_items(slice(None), self.match_table)
        else:
            every = torch.cat([i.reshape(-1) for i in index])
            unique, inverse = torch.unique(every, return_inverse=True)
            matched = self.match_table[unique]
            projected = self.embed_items(unique, matched)
            index = [part.view_as(i) for part, i in zip(inverse.split([i.numel() for i in index]), index, strict=True)]
        # F.embedding: the fastest gather of rows on a CPU (3x index_select)
        return [(F.embedding(items, matched), F.embedding(items, projected)) for items in index]

    def forward(self, batch: UserBatch, item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Raw head outputs ``(N, K, len(HEADS))``; ``item_vectors`` ``(N, K, D)`` replaces the table's
        text embeddings of the scored items (fresh, differentiable ones while fine-tuning the encoder)."""
        k, p = batch.items.shape[1], batch.memory_items.shape[1]
        past_items = torch.cat([batch.memory_items, batch.history.clamp_min(0)], dim=1)
        (text, x), (past_text, past) = self.item_lookup(batch.items, past_items)
        if item_vectors is not None:
            text = self.match_vectors(item_vectors)
            x = self.embed_items(batch.items, text)
        memory, history = past.split([p, past_items.shape[1] - p], dim=1)
        weight = F.softplus(self.engagement_weight(batch.memory_features)).squeeze(-1) * batch.memory_valid
        profile, mean, last, summary = self.user_state(batch, weight, memory, history)
        pair = {
            "item": (x, batch.item_stats),
            "profile": (x * profile[:, None],),
            "session": (x * mean[:, None], x * last[:, None]),
            "similarity": (text_similarity(text, past_text, weight, batch.history >= 0),),
        }
        user = {"profile": profile, "session": torch.cat([mean, last], dim=-1), "feedback": summary}
        fused = self.fuse(pair, user) + self.item_bias(batch.items) + self.propensity_offset(batch.item_stats)
        rating = self.rating_readout(_rating_inputs(fused.detach() * (self.labels_seen > 0), _tile(summary, k)))
        out = dict(zip(FUSED_HEADS, fused.unbind(-1), strict=True)) | {"rating": rating.squeeze(-1)}
        out["value"] = out["value"] * self.value_scale()
        return torch.stack([out[h] for h in HEADS], dim=-1)

    def propensity_offset(self, item_stats: torch.Tensor) -> torch.Tensor:
        """``(N, K, len(FUSED_HEADS))`` what the fused heads start from, given the item statistics ``(N, K, A)``: the
        item's ``consumed_logit`` on the click head (and on the purchase head where users buy; ESMM's
        ``pCTCVR = pCTR × pCVR``), 0 on the others."""
        return item_stats[..., self.propensity_stat, None] * self.offset_heads

    def value_scale(self) -> torch.Tensor:
        """Typical size of a value label (root mean square, bias-corrected running average; 1 before any):
        the value head predicts in these units, so its outputs are of order one in every domain."""
        if not self.value_updates:
            return torch.ones((), device=self.value_moment.device)
        return (self.value_moment / (1.0 - VALUE_MOMENTUM ** self.value_updates.float())).sqrt().clamp_min(1e-3)

    @torch.no_grad()
    def track_labels(self, labels: Mapping[str, torch.Tensor]) -> None:
        """Fold a minibatch's labels (:func:`models.features.slate_labels`) into :meth:`value_scale` and
        into the count of labels each fused head has seen (a head never labelled in this domain, e.g.
        depth in e-commerce, is not read by the rating head)."""
        values = labels["value"][labels["value_mask"]]
        if len(values):
            self.value_moment.mul_(VALUE_MOMENTUM).add_((1.0 - VALUE_MOMENTUM) * values.pow(2).mean())
            self.value_updates += 1
        self.labels_seen += torch.stack([labels[f"{h}_mask"].sum() for h in FUSED_HEADS]).to(self.labels_seen)

    def user_state(
        self, batch: UserBatch, weight: torch.Tensor, memory: torch.Tensor, history: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """``profile``, session ``mean`` and ``last`` ``(N, dim)``, and feedback ``summary`` ``(N, F + 1)``,
        from the engagement weights ``(N, P)`` and the projected embeddings of the memory ``(N, P, dim)``
        and history ``(N, H, dim)`` items."""
        valid = batch.memory_valid.float()
        profile = (weight[..., None] * memory).sum(1) / weight.sum(1, keepdim=True).clamp_min(1e-6)
        seen = (batch.history >= 0).float()
        history = history * seen[..., None]
        mean = history.sum(1) / seen.sum(1, keepdim=True).clamp_min(1.0)
        last = history[:, -1]
        count = valid.sum(1, keepdim=True)
        average = (batch.memory_features * valid[..., None]).sum(1) / count.clamp_min(1.0)
        summary = torch.cat([average, torch.log1p(count) / math.log1p(valid.shape[1])], dim=-1)
        return profile, mean, last, summary


def text_similarity(text: torch.Tensor, past: torch.Tensor, weight: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """How close each item's text is to what the user consumed, as ``(N, K, 4)`` cosine similarities of
    the BERT embeddings (no learnt projection, so it works from the first step): the engagement-weighted
    mean and the maximum over the memory, the mean over the session and the session's last item.

    Args:
        text: ``(N, K, m)`` unit matching vectors of the items scored (see :meth:`RecommenderNet.match_vectors`).
        past: ``(N, P + H, m)`` those of the memory, then the session history.
        weight: ``(N, P)`` engagement weights (0 for invalid memory entries).
        seen: ``(N, H)`` bool, real history entries.
    """
    p = weight.shape[1]
    memory, history = past.split([p, past.shape[1] - p], dim=1)
    seen = seen.float()
    session = (history * seen[..., None]).sum(1) / seen.sum(1, keepdim=True).clamp_min(1.0)
    last = history[:, -1] * seen[:, -1:]
    # one product reads the items' vectors once: (N, K, P) cosines to the memory (the maximum needs each), then
    # those to the session's mean and last item (the session's means need only mean vectors)
    cosine, to_session = (text @ torch.cat([memory, session[:, None], last[:, None]], 1).transpose(1, 2)).split(
        [p, 2], -1
    )
    total = weight.sum(-1).clamp_min(1e-6)[:, None, None]
    weighted = (cosine * weight[:, None]).sum(-1, keepdim=True) / total
    closest = cosine.masked_fill(weight[:, None] <= 0, -1.0).amax(-1, keepdim=True).clamp_min(0.0)
    return torch.cat([weighted, closest, to_session], dim=-1)


def expected_reward(outputs: torch.Tensor, calibrate=None) -> torch.Tensor:
    """Ranking score ``(N, K)``: probability of consumption times the reward it earns; ``calibrate`` maps the
    click head's probability to the one to use (a label strategy's :meth:`~agents.labels.LabelStrategy.calibrate`)."""
    click = torch.sigmoid(outputs[..., HEADS.index("click")])
    return (click if calibrate is None else calibrate(click)) * outputs[..., HEADS.index("value")]


def predicted_stars(outputs: torch.Tensor, center: float = 3.0) -> torch.Tensor:
    """Predicted rating ``(N, K)`` in stars, clipped to 1..5. The rating head predicts the offset from
    ``center`` (the mean rating so far) in units of 2 stars, so an uninformed head predicts the mean."""
    return (center + 2.0 * outputs[..., HEADS.index("rating")]).clamp(1.0, 5.0)


def head_losses(
    outputs: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    value_scale: float = 1.0,
    rating_center: float = 3.0,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Masked mean loss of every head, from outputs ``(N, K, len(HEADS))`` and :func:`models.features.slate_labels`
    tensors, each labelled item's loss multiplied by its ``weights`` ``(N, K)`` (a label strategy's importance
    weights; 1 when None) and the sum divided by the number of labelled items. The value error is measured in
    units of ``value_scale`` so every head weighs alike; the rating head is fitted to the offset from
    ``rating_center`` (see :func:`predicted_stars`)."""
    out = dict(zip(HEADS, outputs.unbind(-1), strict=True))
    per_item = {
        "click": F.binary_cross_entropy_with_logits(out["click"], labels["click"], reduction="none"),
        "value": ((out["value"] - labels["value"]) / value_scale) ** 2,
        "rating": (out["rating"] - (labels["rating"] - rating_center) / 2.0) ** 2,
        "depth": F.binary_cross_entropy_with_logits(out["depth"], labels["depth"], reduction="none"),
        "purchase": F.binary_cross_entropy_with_logits(out["purchase"], labels["purchase"], reduction="none"),
    }
    losses = {}
    for head, loss in per_item.items():
        mask = labels[f"{head}_mask"].float()
        weighted = mask if weights is None else mask * weights
        losses[head] = (loss * weighted).sum() / mask.sum().clamp_min(1.0)
    return losses


def _rating_inputs(fused: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
    """``(N, K, 5)``: the probabilities of consumption and depth, the value (in value-scale units), the
    user's own mean rating and how much the memory holds (from the feedback ``summary`` ``(N, K, F + 1)``)."""
    out = dict(zip(FUSED_HEADS, fused.unbind(-1), strict=True))
    columns = [torch.sigmoid(out["click"]), out["value"], torch.sigmoid(out["depth"])]
    return torch.stack([*columns, summary[..., USER_RATING], summary[..., -1]], dim=-1)


def _tile(user: torch.Tensor, k: int) -> torch.Tensor:
    return user[:, None].expand(-1, k, -1)


def _mlp(width: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, out))


def _make_fusion(
    kind: str, widths: dict[str, tuple[int, int]], hidden: int, weights: Mapping[str, float] | None
) -> nn.Module:
    if kind == "concat":
        return ConcatFusion(widths, hidden)
    if kind == "weighted":
        return WeightedFusion(widths, hidden, weights)
    return MultitaskFusion(widths, hidden)


class PairUserLinear(nn.Module):
    """A linear layer over a source's per-pair and per-user parts concatenated, ``W [pair; user] + b``, computed
    without concatenating: each per-pair tensor against its own columns of ``W`` (the products accumulated in one
    fused multiply-add each), and ``W_user user`` once per user, broadcast over the ``K`` items.

    Args:
        pair_width, user_width: widths of the two parts (either may be 0).
        out: output width.
    """

    def __init__(self, pair_width: int, user_width: int, out: int) -> None:
        super().__init__()
        self.pair = nn.Linear(pair_width, out) if pair_width else None
        self.user = nn.Linear(user_width, out, bias=not pair_width) if user_width else None

    def forward(self, pairs: list[torch.Tensor], user: torch.Tensor | None) -> torch.Tensor:
        """``(N, K, out)`` from the per-pair tensors ``pairs`` (each ``(N, K, w_i)``, in the order of ``W``'s columns,
        the widths summing to ``pair_width``) and ``user`` ``(N, user_width)`` (``(N, 1, out)`` with no per-pair
        part)."""
        out = self._pair(pairs) if self.pair is not None else 0.0
        return out + self.user(user)[:, None] if self.user is not None else out

    def _pair(self, pairs: list[torch.Tensor]) -> torch.Tensor:
        columns = self.pair.weight.split([part.shape[-1] for part in pairs], dim=1)
        shape = pairs[0].shape[:-1]
        out = F.linear(pairs[0].reshape(-1, pairs[0].shape[-1]), columns[0], self.pair.bias)
        for part, weight in zip(pairs[1:], columns[1:], strict=True):
            out = torch.addmm(out, part.reshape(-1, part.shape[-1]), weight.T)
        return out.reshape(*shape, -1)


def _parts(
    pair: dict[str, tuple[torch.Tensor, ...]], user: dict[str, torch.Tensor], names: tuple[str, ...]
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The per-pair tensors of the sources ``names``, in that order, and their per-user parts concatenated (None if
    empty)."""
    users = [user[s] for s in names if s in user]
    return [t for s in names if s in pair for t in pair[s]], (torch.cat(users, dim=-1) if users else None)


def _width(widths: dict[str, tuple[int, int]], names: tuple[str, ...], part: int) -> int:
    return sum(widths[s][part] for s in names)


class ConcatFusion(nn.Module):
    """One MLP over all sources concatenated; its last layer outputs every fused head."""

    def __init__(self, widths: dict[str, tuple[int, int]], hidden: int) -> None:
        super().__init__()
        self.first = PairUserLinear(_width(widths, SOURCES, 0), _width(widths, SOURCES, 1), hidden)
        self.rest = nn.Sequential(nn.GELU(), *_mlp(hidden, hidden, len(FUSED_HEADS), layers=1))

    def forward(self, pair: dict[str, torch.Tensor], user: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.rest(self.first(*_parts(pair, user, SOURCES)))


class WeightedFusion(nn.Module):
    """One scorer per source; their head outputs summed with per-source weights (learnt unless fixed)."""

    def __init__(self, widths: dict[str, tuple[int, int]], hidden: int, weights: Mapping[str, float] | None) -> None:
        super().__init__()
        width = max(hidden // 2, 1)
        self.first = nn.ModuleDict({s: PairUserLinear(*widths[s], width) for s in SOURCES})
        self.last = nn.ModuleDict({s: nn.Sequential(nn.GELU(), nn.Linear(width, len(FUSED_HEADS))) for s in SOURCES})
        if weights is None:
            self.weights = nn.Parameter(torch.ones(len(SOURCES)))
        else:
            unknown = sorted(set(weights) - set(SOURCES))
            if unknown:
                raise ValueError(f"fusion_weights has unknown source(s) {unknown}; expected some of {SOURCES}")
            self.register_buffer("weights", torch.tensor([float(weights.get(s, 1.0)) for s in SOURCES]))

    def forward(self, pair: dict[str, torch.Tensor], user: dict[str, torch.Tensor]) -> torch.Tensor:
        k = next(iter(pair.values()))[0].shape[1]
        scores = [self.last[s](self.first[s](*_parts(pair, user, (s,)))) for s in SOURCES]
        scores = torch.stack([score.expand(-1, k, -1) for score in scores], dim=-1)
        return (scores * self.weights).sum(-1)


class MultitaskFusion(nn.Module):
    """A shared trunk over the concatenated sources, then one small MLP head per fused signal."""

    def __init__(self, widths: dict[str, tuple[int, int]], hidden: int) -> None:
        super().__init__()
        self.trunk = PairUserLinear(_width(widths, SOURCES, 0), _width(widths, SOURCES, 1), hidden)
        self.heads = HeadStack(hidden, max(hidden // 4, 1), len(FUSED_HEADS))

    def forward(self, pair: dict[str, torch.Tensor], user: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.heads(F.gelu(self.trunk(*_parts(pair, user, SOURCES))))


class HeadStack(nn.Module):
    """``heads`` one-hidden-layer MLPs ``width -> hidden -> 1`` on the same input, computed together: their hidden
    layers as one matrix product, their outputs as one weighted sum (the same functions as separate heads, at one
    call for all of them).

    Args:
        width: input width; hidden: each head's hidden width; heads: how many.
    """

    def __init__(self, width: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hidden = heads, hidden
        self.first = nn.Linear(width, heads * hidden)
        self.out_weight = nn.Parameter(torch.empty(heads, hidden).uniform_(-(hidden**-0.5), hidden**-0.5))
        self.out_bias = nn.Parameter(torch.empty(heads).uniform_(-(hidden**-0.5), hidden**-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., heads)`` from ``x`` ``(..., width)``; the output layer is one product with the block-diagonal
        ``(heads, heads · hidden)`` matrix of the heads' output weights (a reduction over each head's few hidden
        units costs more)."""
        block = torch.block_diag(*self.out_weight[:, None, :])
        return F.linear(F.gelu(self.first(x)), block, self.out_bias)
