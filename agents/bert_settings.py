"""Settings of the BERT recommender (Hydra: ``conf/agent/bert.yaml``), validated on construction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from agents.private_feedback import PRIVATE_ESTIMATES
from agents.rater_feedback import RATING_LOSSES
from agents.raters import RATER_MODELS
from models.network import FUSIONS, HEADS
from models.text_tower import FINETUNE_MODES

EXPLORATIONS = ("epsilon", "softmax")


@dataclass(frozen=True)
class BertSettings:
    """Settings of :class:`BertAgent` (Hydra: ``conf/agent/bert.yaml``); validated on construction.

    Attributes:
        encoder: ``"minilm"`` (real all-MiniLM-L6-v2), ``"tiny"`` (random test BERT) or a model directory.
        cache_dir: embedding cache directory (None: ``FEEDBACKREC_CACHE_DIR`` or the user cache dir).
        fusion: ``"concat"``, ``"weighted"`` or ``"multitask"`` (see :mod:`models.network`).
        fusion_weights: fixed per-source weights for ``weighted`` (None: learnt).
        finetune: ``"head"``, ``"lora"``, ``"adalora"`` or ``"full"`` (see :mod:`models.text_tower`).
        exploration: ``"epsilon"`` (a slot is a uniform random candidate with probability ``epsilon``)
            or ``"softmax"`` (Plackett-Luce sampling at ``temperature`` on row-standardised scores).
        mmr_lambda: None, or MMR's relevance weight in [0, 1] (1 - λ penalises text similarity).
        lr, weight_decay: AdamW of the network; encoder_lr: of the fine-tuned BERT weights.
        batch_size: impressions per minibatch; buffer_size: impressions kept in the replay.
        replay_ratio: training examples per new impression: each update takes as many minibatch steps as the
            impressions observed since the last one call for, so learning per impression does not depend on the
            number of concurrent sessions or on how often :meth:`update` is called.
        update_every: environment steps between updates; grad_clip: max gradient norm.
        dim, hidden: network widths; memory_size: engagements remembered per user.
        lora_rank, lora_alpha: LoRA adapters (AdaLoRA's target average rank); adalora_steps: fine-tuning steps
            over which AdaLoRA cuts its rank budget; refresh_every: updates between refreshes of the whole item table.
        text_every: in ``lora``/``full`` mode, minibatch steps between two that fine-tune the encoder (the others
            train the network on the item table); text_items: distinct items of the minibatch such a step
            encodes with gradients (the others are read from the table), whose table rows it then refreshes.
        loss_weights: head name → weight of its loss.
        holdout_fraction: share of impressions held out to measure rating error (never trained on).
        rater_model: ``"naive"`` (every rating and report taken as it comes) or ``"reliability"`` (per-user rating
            bias, reliability and spam, and estimates of private reports; :mod:`agents.rater_feedback`).
        private_estimate: under ``reliability``, a private report's estimate: ``"posterior"`` (its posterior mean
            under population priors) or ``"unbiased"`` (:mod:`agents.private_feedback`).
        rating_loss: the rating head's loss, ``"squared"`` or ``"huber"`` (robust to wild ratings).
        device: ``"cpu"``, ``"cuda"``, ... (None: the GPU when present).
        cpu_threads: torch intra-op threads when on the CPU (a process-wide setting: the agent's small
            matrices run fastest on one thread, and many threads stall on a shared machine); None
            leaves torch's default.
    """

    encoder: str = "minilm"
    cache_dir: str | None = None
    fusion: str = "multitask"
    fusion_weights: Mapping[str, float] | None = None
    finetune: str = "head"
    exploration: str = "epsilon"
    epsilon: float = 0.1
    temperature: float = 0.3
    mmr_lambda: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    encoder_lr: float = 1e-4
    batch_size: int = 256
    buffer_size: int = 50_000
    replay_ratio: float = 1.5
    update_every: int = 1
    grad_clip: float = 1.0
    dim: int = 32
    hidden: int = 64
    memory_size: int = 32
    lora_rank: int = 8
    lora_alpha: float = 16.0
    adalora_steps: int = 2000
    refresh_every: int = 1000
    text_every: int = 4
    text_items: int = 32
    loss_weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(HEADS, 1.0))
    holdout_fraction: float = 0.1
    rater_model: str = "naive"
    private_estimate: str = "posterior"
    rating_loss: str = "squared"
    device: str | None = None
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        for name, allowed in (
            ("fusion", FUSIONS),
            ("finetune", FINETUNE_MODES),
            ("exploration", EXPLORATIONS),
            ("rater_model", RATER_MODELS),
            ("private_estimate", PRIVATE_ESTIMATES),
            ("rating_loss", RATING_LOSSES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")
        for name in ("lr", "encoder_lr", "temperature", "grad_clip", "lora_alpha", "replay_ratio"):
            _require(name, getattr(self, name), lambda v: v > 0, "a number > 0")
        for name in (
            "batch_size",
            "buffer_size",
            "update_every",
            "dim",
            "hidden",
            "memory_size",
            "lora_rank",
            "adalora_steps",
            "refresh_every",
            "text_every",
            "text_items",
        ):
            _require(name, getattr(self, name), lambda v: v > 0 and float(v).is_integer(), "an integer > 0")
        _require("weight_decay", self.weight_decay, lambda v: v >= 0, "a number >= 0")
        _require("epsilon", self.epsilon, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        _require("holdout_fraction", self.holdout_fraction, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if self.cpu_threads is not None:
            _require(
                "cpu_threads", self.cpu_threads, lambda v: v > 0 and float(v).is_integer(), "None or an integer > 0"
            )
        if self.mmr_lambda is not None:
            _require("mmr_lambda", self.mmr_lambda, lambda v: 0 <= v <= 1, "None or a number in [0, 1]")
        unknown = sorted(set(self.loss_weights) - set(HEADS))
        if unknown:
            raise ValueError(f"loss_weights has unknown head(s) {unknown}; expected some of {HEADS}")
        for head, weight in self.loss_weights.items():
            _require(f"loss_weights[{head!r}]", weight, lambda v: v >= 0, "a number >= 0")

    @classmethod
    def of(cls, settings: Mapping[str, object]) -> BertSettings:
        """Build from keyword settings; an unknown name is named in the error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown BertAgent setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**settings)  # type: ignore[arg-type]


def _require(name: str, value: object, ok, expected: str) -> None:
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and ok(value)
    if not valid:
        raise ValueError(f"{name}={value!r}; expected {expected}")
