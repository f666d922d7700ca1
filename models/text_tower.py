"""The text side of the recommender: a BERT encoder in its fine-tuning mode, and the items' text embeddings.

Modes (``finetune``): ``head`` — BERT frozen, the catalogue's embeddings read from the on-disk cache (the fast
default); ``lora`` — LoRA adapters on BERT's attention projections through ``peft`` (Hu et al., ICLR 2022:
``W x + (α / r) · B A x`` with rank-``r`` matrices ``A``, ``B`` trained, ``W`` frozen); ``adalora`` — AdaLoRA
through ``peft`` (Zhang et al., ICLR 2023: the update as an SVD triplet ``W x + P Λ Q x``, whose singular values
``Λ`` are pruned by their importance, an exponential moving average of ``|λ · ∂L/∂λ|``, from ``1.5 r`` per matrix
to an average of ``r`` over the encoder's first ``adalora_steps`` fine-tuning steps; peft adds the orthogonality
penalty on ``P`` and ``Q`` to a model's own loss, which a sentence encoder has none of, so it is not applied);
``full`` — every BERT weight trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import peft
import torch

from models.encoder import TextEncoder, catalog_embeddings, text_embeddings

FINETUNE_MODES = ("head", "lora", "adalora", "full")
LORA_TARGETS = ("query", "key", "value")
VECTORS = "item_vectors"
"""The name of the items' latest embeddings in :meth:`TextTower.state_dict`."""


class TextTower:
    """An encoder over a catalogue's texts.

    Args:
        encoder: ``"minilm"``, ``"tiny"`` or a local model directory (see :meth:`TextEncoder.load`).
        catalog: the items (their ``texts``).
        finetune: one of :data:`FINETUNE_MODES`.
        device: where the encoder runs.
        cache_dir: the embedding cache (None: the default one).
        lora_rank, lora_alpha: LoRA's ``r`` and ``α`` (AdaLoRA's target average rank and ``α``).
        adalora_steps: fine-tuning steps over which AdaLoRA cuts its rank budget to ``lora_rank``.
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
        adalora_steps: int = 2000,
    ) -> None:
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"unknown finetune {finetune!r}; expected one of {FINETUNE_MODES}")
        self.finetune, self.texts, self.cache_dir = finetune, list(catalog.texts), cache_dir
        self.encoder = TextEncoder.load(encoder, device)
        self.pretrained_vectors = catalog_embeddings(catalog, self.encoder, cache_dir)
        """``(num_items, D)`` float32 embeddings by the pretrained encoder (read from the on-disk cache)."""
        self.vectors = self.pretrained_vectors.copy() if finetune != "head" else self.pretrained_vectors
        """``(num_items, D)`` float32 each item's latest embedding: when the whole catalogue was last encoded, or
        since, when a fine-tuning step encoded it (:meth:`fresh_vectors`)."""
        self.encoder.requires_grad_(finetune == "full")
        if finetune == "lora":
            config = peft.LoraConfig(
                r=lora_rank, lora_alpha=lora_alpha, target_modules=list(LORA_TARGETS), lora_dropout=0.0
            )
            self.encoder.model = peft.get_peft_model(self.encoder.model, config)
        elif finetune == "adalora":
            config = peft.AdaLoraConfig(
                init_r=lora_rank + (lora_rank + 1) // 2,
                target_r=lora_rank,
                lora_alpha=lora_alpha,
                target_modules=list(LORA_TARGETS),
                total_step=adalora_steps,
                tinit=adalora_steps // 10,  # steps at full rank before pruning starts
                tfinal=adalora_steps // 5,  # steps at the final budget
            )
            self.encoder.model = peft.get_peft_model(self.encoder.model, config)
        self.steps = 0
        """Fine-tuning steps taken (AdaLoRA's clock)."""

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

    def fresh_vectors(
        self, items: torch.Tensor, rng: np.random.Generator, limit: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Embeddings ``(*items.shape, D)`` of ``items`` (catalogue indices) for a step that fine-tunes the encoder:
        up to ``limit`` of their distinct items, drawn with ``rng``, encoded now (differentiable), the others as
        last encoded (constants from :attr:`vectors`); and the ``(n,)`` items encoded now, whose rows of
        :attr:`vectors` take their new embeddings (an incremental refresh of the table).

        Encoding a minibatch's ~1,000 distinct texts with gradients took seconds on a CPU; a sample of a few
        dozen gives the encoder its gradient at a fraction of the cost."""
        unique, inverse = np.unique(items.cpu().numpy(), return_inverse=True)
        encoded = np.sort(rng.choice(unique, min(limit, len(unique)), replace=False))
        vectors = torch.as_tensor(self.vectors[unique], device=items.device)
        fresh = self.encoder.embed([self.texts[i] for i in encoded.tolist()])
        vectors = vectors.index_put((torch.as_tensor(np.searchsorted(unique, encoded), device=items.device),), fresh)
        self.vectors[encoded] = fresh.detach().cpu().numpy()
        return vectors[torch.as_tensor(inverse.reshape(items.shape), device=items.device)], encoded

    def stepped(self) -> None:
        """Call after each optimiser step that fine-tuned the encoder, before the gradients are cleared: AdaLoRA
        updates its importance scores from them and prunes on its schedule."""
        self.steps += 1
        if self.finetune == "adalora":
            self.encoder.model.base_model.update_and_allocate(self.steps)

    def replace(self, items: np.ndarray, texts: list[str]) -> np.ndarray:
        """New texts for the catalogue indices ``items`` ``(n,)`` (items published in their slots); returns their
        embeddings ``(n, D)``: the pretrained encoder's through the on-disk cache, or the fine-tuned encoder's
        (not cached: they change as it trains)."""
        for item, text in zip(items.tolist(), texts, strict=True):
            self.texts[item] = text
        if self.trains:
            vectors = self.encoder.encode(list(texts))
        else:
            vectors = text_embeddings(list(texts), self.encoder, self.cache_dir)
            self.pretrained_vectors[items] = vectors
        self.vectors[items] = vectors
        return vectors

    def encode_all(self) -> np.ndarray:
        """``(num_items, D)`` float32 embeddings of every text by the encoder as fine-tuned so far (also kept
        as :attr:`vectors`)."""
        self.vectors = self.encoder.encode(self.texts)
        return self.vectors

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fine-tuned weights and the items' latest embeddings (nothing in ``head`` mode)."""
        weights = {n: p.detach() for n, p in self.encoder.named_parameters() if p.requires_grad}
        return {**weights, VECTORS: torch.as_tensor(self.vectors)} if weights else {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        state = dict(state)
        missing = {n for n, p in self.encoder.named_parameters() if p.requires_grad} - set(state)
        if missing:
            raise ValueError(f"the saved state lacks fine-tuned encoder weights {sorted(missing)[:3]}...")
        if VECTORS in state:
            self.vectors = state.pop(VECTORS).numpy().copy()
        self.encoder.load_state_dict(state, strict=False)
