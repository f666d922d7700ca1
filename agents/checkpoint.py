"""Atomic, checksummed checkpoints.

Each checkpoint is a directory ``step_<n>/`` written under a temporary name, with ``manifest.json``
listing the SHA-256 of every file, then renamed into place; the file ``latest`` (replaced atomically)
names the newest complete one. A process killed mid-write leaves the previous checkpoint intact, and
a corrupted file is detected by its checksum and reported, never silently loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


class Checkpoints:
    """Checkpoints of one run under ``root``, keeping the newest ``keep``."""

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep}; expected at least 1 checkpoint to keep")
        self.root, self.keep = Path(root), keep

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Call ``write(directory)`` to fill a new checkpoint for ``step``; returns its final path."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step_{step:012d}"
        staging = self.root / f".staging-{final.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write(staging)
        manifest = {str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        _write_durably(staging / MANIFEST, json.dumps(manifest, indent=1).encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _write_durably(self.root / ".latest.tmp", final.name.encode())
        os.replace(self.root / ".latest.tmp", self.root / "latest")
        self._prune()
        return final

    def latest(self) -> Path | None:
        """The newest checkpoint that passes its checksums, or None when there is none yet.

        A corrupt newer checkpoint is reported (logged) and skipped; if checkpoints exist but none is
        intact, :class:`CheckpointError` names the problems.
        """
        candidates = sorted(self.root.glob("step_*"), reverse=True) if self.root.is_dir() else []
        problems = []
        for path in candidates:
            problem = verify(path)
            if problem is None:
                return path
            log.warning("skipping checkpoint %s: %s", path, problem)
            problems.append(f"{path.name}: {problem}")
        if problems:
            raise CheckpointError(f"no intact checkpoint under {self.root}: " + "; ".join(problems))
        return None

    def _prune(self) -> None:
        for old in sorted(self.root.glob("step_*"), reverse=True)[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)


def verify(path: Path) -> str | None:
    """None if every file of checkpoint ``path`` matches its manifest, else what is wrong."""
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        return f"unreadable {MANIFEST} ({error})"
    for name, digest in manifest.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if _sha256(file) != digest:
            return f"{name} fails its SHA-256 checksum (corrupt or truncated)"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
