"""On-disk cache of text embeddings, keyed by (model identity, text).

All embeddings of one model live in one safetensors file named after a hash of the model identity:
``keys`` ``(N, 16)`` uint8 (BLAKE2b digests of the texts, sorted) and ``vectors`` ``(N, D)`` float32, with
the identity and a SHA-256 of both arrays in the file's metadata. Files are written atomically
(temporary file, fsync, rename), so a reader sees the old file or the new one, never half of one. A
truncated or corrupt file fails its checksum, is reported with a warning and rebuilt; it is never used.

The directory is, in order of precedence: the ``directory`` argument, the environment variable
``FEEDBACKREC_CACHE_DIR``, or ``$XDG_CACHE_HOME/feedbackrec/embeddings`` (``~/.cache/...`` by default).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

ENV_VAR = "FEEDBACKREC_CACHE_DIR"
FORMAT = "feedbackrec-embeddings-v1"
KEY_BYTES = 16

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$FEEDBACKREC_CACHE_DIR`` if set, else the user cache dir's ``feedbackrec/embeddings``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feedbackrec" / "embeddings"


def text_keys(texts: list[str]) -> np.ndarray:
    """``(N,)`` ``S16`` digests of ``texts`` (the cache's keys)."""
    return np.array([hashlib.blake2b(t.encode(), digest_size=KEY_BYTES).digest() for t in texts], dtype=f"S{KEY_BYTES}")


def writable_directory(directory: str | Path, setting: str = "cache_dir") -> Path:
    """Create ``directory`` if needed and prove it writable; the error names ``setting``."""
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ValueError(
            f"{setting}={str(directory)!r} is not a writable directory ({error.strerror or error}); "
            f"pass another {setting} or set {ENV_VAR}"
        ) from None
    return path


class EmbeddingCache:
    """The cached embeddings of the model called ``identity``.

    Args:
        identity: what produced the embeddings (see :func:`models.encoder.encoder_identity`).
        directory: where cache files live (default :func:`default_cache_dir`); must be writable.
    """

    def __init__(self, identity: str, directory: str | Path | None = None) -> None:
        self.identity = identity
        self.directory = writable_directory(default_cache_dir() if directory is None else directory)
        name = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self.path = self.directory / f"{name}.safetensors"

    def lookup(self, texts: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """``(vectors, missing)``: ``(N, D)`` float32 embeddings (zero rows where missing; None when the
        cache is empty) and the ``(N,)`` bool mask of texts not cached yet."""
        keys, vectors = self._read()
        wanted = text_keys(texts)
        if not len(keys):
            return None, np.ones(len(texts), bool)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[at] == wanted
        out = np.zeros((len(texts), vectors.shape[1]), np.float32)
        out[found] = vectors[at[found]]
        return out, ~found

    def store(self, texts: list[str], vectors: np.ndarray) -> None:
        """Add the embeddings ``(N, D)`` of ``texts`` to the file (atomically rewritten)."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(
                f"{len(texts)} texts but {len(vectors)} vectors of shape {vectors.shape}; expected one row per text"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or inf; expected finite vectors (the encoder output is broken)")
        keys, old = self._read()
        if len(keys) and old.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"embedding width {vectors.shape[1]} differs from the cached {old.shape[1]} in {self.path}"
            )
        keys = np.concatenate([keys, text_keys(texts)])
        vectors = (
            np.concatenate([old, np.asarray(vectors, np.float32)]) if len(old) else np.asarray(vectors, np.float32)
        )
        keys, first = np.unique(keys, return_index=True)
        self._write(keys, vectors[first])

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys ``(N,)`` and vectors ``(N, D)``; empty when the file is absent or unusable."""
        empty = np.zeros(0, f"S{KEY_BYTES}"), np.zeros((0, 0), np.float32)
        if not self.path.is_file():
            return empty
        try:
            keys, vectors = self._parse(self.path.read_bytes())
        except (OSError, ValueError, SafetensorError) as error:
            log.warning("embedding cache %s is unusable (%s); rebuilding it", self.path, error)
            return empty
        return keys, vectors

    def _parse(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        tensors = load(data)
        keys, vectors = tensors["keys"], tensors["vectors"]
        metadata = _metadata(data)
        if metadata.get("format") != FORMAT or metadata.get("identity") != self.identity:
            raise ValueError("format or model identity does not match")
        if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(f"malformed arrays keys {keys.shape}, vectors {vectors.shape}")
        if metadata.get("sha256") != _checksum(keys, vectors):
            raise ValueError("checksum mismatch")
        return keys.view(f"S{KEY_BYTES}").ravel(), vectors

    def _write(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        raw_keys = np.ascontiguousarray(keys).view(np.uint8).reshape(-1, KEY_BYTES)
        vectors = np.ascontiguousarray(vectors, np.float32)
        metadata = {"format": FORMAT, "identity": self.identity, "sha256": _checksum(raw_keys, vectors)}
        data = save({"keys": raw_keys, "vectors": vectors}, metadata=metadata)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".safetensors")
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(keys).tobytes())
    digest.update(np.ascontiguousarray(vectors, np.float32).tobytes())
    return digest.hexdigest()


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors byte string (its JSON header)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__", {})
