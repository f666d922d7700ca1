"""The recommender network: scores (user state, item) pairs on several feedback signals at once.

Item side: the item's text embedding (from BERT: cached, or fine-tuned) with its numeric attributes,
projected to ``dim``, plus a learnt per-item bias for every head (what text cannot say, e.g. quality).
User side, from four *sources*:

- ``item``: the item's own projected embedding;
- ``profile``: the long-term user state, the embeddings of the items the user engaged with (across
  sessions), each weighted by a learnt positive function of its feedback features, with its product
  with the item;
- ``session``: the mean and the last of this session's consumed items, with their products with the item;
- ``feedback``: a summary of the user's feedback features (masked means) and engagement count.

Fusion of the sources (``fusion``):

- ``concat``: one MLP over the concatenated sources, one output layer for all heads;
- ``weighted``: one small scorer per source, outputs summed with per-source weights, learnt or fixed;
- ``multitask``: a shared trunk over the concatenated sources, then one MLP head per signal.

Heads (:data:`HEADS`): ``click`` (logit that a shown item is consumed; BCE), ``value`` (reward its
feedback earns once consumed; squared error), ``rating`` (stars, as ``(stars - 3) / 2``; squared error)
and ``depth`` (consumed share; BCE). The ranking score is the expected reward ``sigmoid(click) * value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

HEADS = ("click", "value", "rating", "depth")
FUSIONS = ("concat", "weighted", "multitask")
SOURCES = ("item", "profile", "session", "feedback")


@dataclass(frozen=True)
class UserBatch:
    """Who the items are scored for, as tensors.

    Attributes:
        items: ``(N, K)`` catalogue indices to score.
        history: ``(N, H)`` this session's consumed items, most recent last, -1 pads.
        memory_items: ``(N, P)`` the user's remembered engagements' items.
        memory_features: ``(N, P, F)`` their feedback features (:mod:`models.features`).
        memory_valid: ``(N, P)`` bool, real engagements.
    """

    items: torch.Tensor
    history: torch.Tensor
    memory_items: torch.Tensor
    memory_features: torch.Tensor
    memory_valid: torch.Tensor


class RecommenderNet(nn.Module):
    """Scores ``(N, K)`` items for ``N`` users on every head.

    Args:
        item_vectors: ``(I, D)`` text embeddings of the catalogue (a buffer: refreshed, never trained).
        item_attributes: ``(I, A)`` standardised numeric attributes.
        num_features: ``F``, width of the feedback features.
        fusion: ``"concat"``, ``"weighted"`` or ``"multitask"``.
        dim: width of projected item embeddings.
        hidden: width of hidden layers.
        fusion_weights: for ``weighted``, fixed per-source weights (source name → weight); None learns them.
    """

    def __init__(
        self,
        item_vectors: torch.Tensor,
        item_attributes: torch.Tensor,
        num_features: int,
        fusion: str = "multitask",
        dim: int = 64,
        hidden: int = 128,
        fusion_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
        self.fusion_mode = fusion
        self.register_buffer("item_vectors", item_vectors.float())
        self.register_buffer("item_attributes", item_attributes.float())
        self.project = nn.Linear(item_vectors.shape[1] + item_attributes.shape[1], dim)
        self.item_bias = nn.Embedding(len(item_vectors), len(HEADS))
        nn.init.zeros_(self.item_bias.weight)
        self.engagement_weight = nn.Linear(num_features, 1)
        nn.init.constant_(self.engagement_weight.bias, math.log(math.e - 1.0))
        widths = {"item": dim, "profile": 2 * dim, "session": 4 * dim, "feedback": num_features + 1}
        self.fuse = _make_fusion(fusion, widths, hidden, fusion_weights)

    def embed_items(self, items: torch.Tensor, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Projected embeddings ``(*items.shape, dim)``; ``vectors`` ``(*items.shape, D)`` replaces the
        table's text embeddings (fresh, differentiable ones while fine-tuning the encoder)."""
        text = self.item_vectors[items] if vectors is None else vectors
        return self.project(torch.cat([text, self.item_attributes[items]], dim=-1))

    def forward(self, batch: UserBatch, item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Raw head outputs ``(N, K, len(HEADS))``; ``item_vectors`` as in :meth:`embed_items`."""
        x = self.embed_items(batch.items, item_vectors)
        profile, mean, last, summary = self.user_state(batch)
        k = x.shape[1]
        sources = {
            "item": x,
            "profile": torch.cat([_tile(profile, k), x * profile[:, None]], dim=-1),
            "session": torch.cat([_tile(mean, k), _tile(last, k), x * mean[:, None], x * last[:, None]], dim=-1),
            "feedback": _tile(summary, k),
        }
        return self.fuse(sources) + self.item_bias(batch.items)

    def user_state(self, batch: UserBatch) -> tuple[torch.Tensor, ...]:
        """``profile``, session ``mean`` and ``last`` ``(N, dim)``, and feedback ``summary`` ``(N, F + 1)``."""
        valid = batch.memory_valid.float()
        memory = self.embed_items(batch.memory_items)
        weight = F.softplus(self.engagement_weight(batch.memory_features)).squeeze(-1) * valid
        profile = (weight[..., None] * memory).sum(1) / weight.sum(1, keepdim=True).clamp_min(1e-6)
        seen = (batch.history >= 0).float()
        history = self.embed_items(batch.history.clamp_min(0)) * seen[..., None]
        mean = history.sum(1) / seen.sum(1, keepdim=True).clamp_min(1.0)
        last = history[:, -1]
        count = valid.sum(1, keepdim=True)
        average = (batch.memory_features * valid[..., None]).sum(1) / count.clamp_min(1.0)
        summary = torch.cat([average, torch.log1p(count) / math.log1p(valid.shape[1])], dim=-1)
        return profile, mean, last, summary


def expected_reward(outputs: torch.Tensor) -> torch.Tensor:
    """Ranking score ``(N, K)``: probability of consumption times the reward it earns."""
    return torch.sigmoid(outputs[..., HEADS.index("click")]) * outputs[..., HEADS.index("value")]


def predicted_stars(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted rating ``(N, K)`` in stars, clipped to 1..5."""
    return (3.0 + 2.0 * outputs[..., HEADS.index("rating")]).clamp(1.0, 5.0)


def head_losses(outputs: torch.Tensor, labels: Mapping[str, torch.Tensor], value_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Masked mean loss of every head, from outputs ``(N, K, len(HEADS))`` and :func:`models.features.slate_labels`
    tensors. The value loss is divided by ``value_scale`` (mean squared value) so every head weighs alike."""
    out = dict(zip(HEADS, outputs.unbind(-1), strict=True))
    per_item = {
        "click": F.binary_cross_entropy_with_logits(out["click"], labels["click"], reduction="none"),
        "value": (out["value"] - labels["value"]) ** 2 / value_scale,
        "rating": (out["rating"] - (labels["rating"] - 3.0) / 2.0) ** 2,
        "depth": F.binary_cross_entropy_with_logits(out["depth"], labels["depth"], reduction="none"),
    }
    losses = {}
    for head, loss in per_item.items():
        mask = labels[f"{head}_mask"].float()
        losses[head] = (loss * mask).sum() / mask.sum().clamp_min(1.0)
    return losses


def _tile(user: torch.Tensor, k: int) -> torch.Tensor:
    return user[:, None].expand(-1, k, -1)


def _mlp(width: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, out))


def _make_fusion(kind: str, widths: dict[str, int], hidden: int, weights: Mapping[str, float] | None) -> nn.Module:
    if kind == "concat":
        return ConcatFusion(widths, hidden)
    if kind == "weighted":
        return WeightedFusion(widths, hidden, weights)
    return MultitaskFusion(widths, hidden)


class ConcatFusion(nn.Module):
    """One MLP over all sources concatenated; its last layer outputs every head."""

    def __init__(self, widths: dict[str, int], hidden: int) -> None:
        super().__init__()
        self.net = _mlp(sum(widths.values()), hidden, len(HEADS))

    def forward(self, sources: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat([sources[s] for s in SOURCES], dim=-1))


class WeightedFusion(nn.Module):
    """One scorer per source; their head outputs summed with per-source weights (learnt unless fixed)."""

    def __init__(self, widths: dict[str, int], hidden: int, weights: Mapping[str, float] | None) -> None:
        super().__init__()
        self.scorers = nn.ModuleDict({s: _mlp(widths[s], hidden // 2, len(HEADS), layers=1) for s in SOURCES})
        if weights is None:
            self.weights = nn.Parameter(torch.ones(len(SOURCES)))
        else:
            unknown = sorted(set(weights) - set(SOURCES))
            if unknown:
                raise ValueError(f"fusion_weights has unknown source(s) {unknown}; expected some of {SOURCES}")
            self.register_buffer("weights", torch.tensor([float(weights.get(s, 1.0)) for s in SOURCES]))

    def forward(self, sources: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = torch.stack([self.scorers[s](sources[s]) for s in SOURCES], dim=-1)
        return (scores * self.weights).sum(-1)


class MultitaskFusion(nn.Module):
    """A shared trunk over the concatenated sources, then one small MLP head per signal."""

    def __init__(self, widths: dict[str, int], hidden: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(sum(widths.values()), hidden), nn.GELU())
        self.heads = nn.ModuleList(_mlp(hidden, hidden // 2, 1, layers=1) for _ in HEADS)

    def forward(self, sources: dict[str, torch.Tensor]) -> torch.Tensor:
        shared = self.trunk(torch.cat([sources[s] for s in SOURCES], dim=-1))
        return torch.cat([head(shared) for head in self.heads], dim=-1)
