"""The text side of the recommender: a BERT encoder in its fine-tuning mode, and the items' text embeddings.

Modes (``finetune``): ``head`` — BERT frozen, the catalogue's embeddings read from the on-disk cache (the fast
default); ``lora`` — LoRA adapters on BERT's attention projections through ``peft`` (Hu et al., ICLR 2022:
``W x + (α / r) · B A x`` with rank-``r`` matrices ``A``, ``B`` trained, ``W`` frozen); ``full`` — every BERT
weight trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import peft
import torch

from models.encoder import TextEncoder, catalog_embeddings, text_embeddings

FINETUNE_MODES = ("head", "lora", "full")
LORA_TARGETS = ("query", "key", "value")


class TextTower:
    """An encoder over a catalogue's texts.

    Args:
        encoder: ``"minilm"``, ``"tiny"`` or a local model directory (see :meth:`TextEncoder.load`).
        catalog: the items (their ``texts``).
        finetune: one of :data:`FINETUNE_MODES`.
        device: where the encoder runs.
        cache_dir: the embedding cache (None: the default one).
        lora_rank, lora_alpha: LoRA's ``r`` and ``α``.
    """

    def __init__(
        self,
        encoder: str | Path,
        catalog,
        finetune: str = "head",
        device: torch.device | str = "cpu",
        cache_dir: str | Path | None = None,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
    ) -> None:
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"unknown finetune {finetune!r}; expected one of {FINETUNE_MODES}")
        self.finetune, self.texts, self.cache_dir = finetune, list(catalog.texts), cache_dir
        self.encoder = TextEncoder.load(encoder, device)
        self.pretrained_vectors = catalog_embeddings(catalog, self.encoder, cache_dir)
        """``(num_items, D)`` float32 embeddings by the pretrained encoder (read from the on-disk cache)."""
        self.encoder.requires_grad_(finetune == "full")
        if finetune == "lora":
            config = peft.LoraConfig(
                r=lora_rank, lora_alpha=lora_alpha, target_modules=list(LORA_TARGETS), lora_dropout=0.0
            )
            self.encoder.model = peft.get_peft_model(self.encoder.model, config)

    @property
    def trains(self) -> bool:
        """Whether any encoder weight is fine-tuned (``lora`` or ``full``)."""
        return self.finetune != "head"

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def parameters(self) -> list[torch.nn.Parameter]:
        """The encoder weights being fine-tuned (none in ``head`` mode)."""
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def fresh_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Differentiable embeddings ``(*items.shape, D)`` of ``items`` (catalogue indices), each distinct item
        encoded once."""
        unique, inverse = torch.unique(items, return_inverse=True)
        return self.encoder.embed([self.texts[i] for i in unique.tolist()])[inverse]

    def replace(self, items: np.ndarray, texts: list[str]) -> np.ndarray:
        """New texts for the catalogue indices ``items`` ``(n,)`` (items published in their slots); returns their
        embeddings ``(n, D)``: the pretrained encoder's through the on-disk cache, or the fine-tuned encoder's
        (not cached: they change as it trains)."""
        for item, text in zip(items.tolist(), texts, strict=True):
            self.texts[item] = text
        if self.trains:
            return self.encoder.encode(list(texts))
        vectors = text_embeddings(list(texts), self.encoder, self.cache_dir)
        self.pretrained_vectors[items] = vectors
        return vectors

    def encode_all(self) -> np.ndarray:
        """``(num_items, D)`` float32 embeddings of every text by the encoder as fine-tuned so far."""
        return self.encoder.encode(self.texts)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fine-tuned weights (none in ``head`` mode)."""
        return {n: p.detach() for n, p in self.encoder.named_parameters() if p.requires_grad}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = {n for n, p in self.encoder.named_parameters() if p.requires_grad} - set(state)
        if missing:
            raise ValueError(f"the saved state lacks fine-tuned encoder weights {sorted(missing)[:3]}...")
        self.encoder.load_state_dict(dict(state), strict=False)
