"""sha256 of bundle files: an edited or truncated artifact is caught before it is pushed or run."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_files(root: Path, relative_paths: list[str]) -> dict[str, dict[str, object]]:
    """``{relative path: {"sha256": ..., "bytes": ...}}`` for the files a bundle lists."""
    return {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size} for rel in relative_paths}
