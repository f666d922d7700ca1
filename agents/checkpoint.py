"""Atomic, checksummed checkpoints.

Each checkpoint is a directory ``step_<n>/`` written under a temporary name, with ``manifest.json``
listing the SHA-256 of every file, then renamed into place; the file ``latest`` (replaced atomically)
names the newest complete one. A process killed mid-write leaves the previous checkpoint intact (its
half-written staging directory is removed by the next save), and a corrupted, missing or unlisted file
is detected against the manifest and reported, never silently loaded.

Files are fsynced before the manifest is written and the directory is fsynced after the rename, so a
checkpoint that ``latest`` names survives a power cut, not only a killed process.

Only one process may write checkpoints under a given root at a time (one run per output directory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


class Checkpoints:
    """Checkpoints of one run under ``root``, keeping the newest ``keep``."""

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 1:
            raise ValueError(f"keep={keep!r}; expected an integer >= 1 (checkpoints to keep)")
        self.root, self.keep = Path(root), int(keep)

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Call ``write(directory)`` to fill a new checkpoint for ``step``; returns its final path.

        If ``write`` raises, the partial checkpoint is removed and the error propagates; the previous
        checkpoints are untouched.
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"checkpoint step={step!r}; expected an integer >= 0")
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step_{step:012d}"
        for stale in self.root.glob(f"{STAGING_PREFIX}*"):  # left by a writer that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = self.root / f"{STAGING_PREFIX}{final.name}-{os.getpid()}"
        staging.mkdir()
        try:
            write(staging)
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            for file in files:
                _fsync(file)
            manifest = {p.relative_to(staging).as_posix(): _sha256(p) for p in files}
            _write_durably(staging / MANIFEST, json.dumps(manifest, indent=1).encode())
            for directory in {staging, *(p.parent for p in files)}:
                _fsync(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _write_durably(self.root / ".latest.tmp", final.name.encode())
        os.replace(self.root / ".latest.tmp", self.root / "latest")
        _fsync(self.root)
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
    """None if the files of checkpoint ``path`` are exactly those of its manifest, each matching its
    SHA-256; else what is wrong (unreadable manifest, a missing, corrupt or unlisted file)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        return f"unreadable {MANIFEST} ({error})"
    if not isinstance(manifest, dict) or not all(isinstance(d, str) for d in manifest.values()):
        return f"{MANIFEST} is not a mapping of file name to SHA-256"
    for name, digest in manifest.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            return f"{MANIFEST} names {name!r}, outside the checkpoint"
        file = path / relative
        if not file.is_file():
            return f"{name} is missing"
        if _sha256(file) != digest:
            return f"{name} fails its SHA-256 checksum (corrupt or truncated)"
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {MANIFEST}
    unlisted = sorted(present - set(manifest))
    if unlisted:
        return f"{unlisted} are not in {MANIFEST} (added after the checkpoint was written)"
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


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory's entries) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
