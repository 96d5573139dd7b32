"""Open a bundle and check it is complete and unedited before anything runs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilevit_deploy.errors import DeployError

from .checksums import sha256_file
from .metadata import FORMAT, FORMAT_VERSION, METADATA

_REQUIRED = ("model", "target", "input", "output", "files", "reference", "versions")


class BundleError(DeployError):
    """A bundle folder is missing, incomplete, edited, or of an unknown format."""


@dataclass(frozen=True)
class Bundle:
    root: Path
    metadata: dict[str, Any]

    @property
    def runtime(self) -> str:
        return self.metadata["target"]["runtime"]

    @property
    def arch(self) -> str:
        return self.metadata["target"]["arch"]

    @property
    def artifact(self) -> Path:
        return self.root / self.metadata["target"]["artifact"]

    @property
    def runner_files(self) -> list[Path]:
        """The runner first, then its libraries (empty for ONNX Runtime bundles, which run in Python)."""
        target = self.metadata["target"]
        return [self.root / p for p in ([target["runner"]] if target.get("runner") else []) + target.get("libs", [])]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        ref = self.metadata["reference"]
        return np.load(self.root / ref["input"]), np.load(self.root / ref["output"])


def load_bundle(root: str | Path, check_files: bool = True) -> Bundle:
    """Read ``metadata.json`` and (by default) check every listed file's size and sha256."""
    root = Path(root)
    meta_path = root / METADATA
    if not root.is_dir():
        raise BundleError(f"bundle folder not found: {root}", hint="pass the folder `mvd compile -o` wrote")
    if not meta_path.is_file():
        raise BundleError(f"{root} is not a bundle: it has no {METADATA}", hint="rebuild it with `mvd compile`")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{meta_path} is not valid JSON ({err.msg}, line {err.lineno})",
                          hint="rebuild the bundle with `mvd compile`") from None
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{meta_path} is not a mobilevit-deploy bundle of format version {FORMAT_VERSION}",
                          hint="rebuild it with this version of `mvd compile`")
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise BundleError(f"{meta_path} lacks {', '.join(missing)}", hint="rebuild the bundle with `mvd compile`")
    if check_files:
        _check_files(root, metadata["files"])
    return Bundle(root, metadata)


def _check_files(root: Path, files: dict[str, dict[str, Any]]) -> None:
    for rel, info in files.items():
        path = root / rel
        if not path.is_file():
            raise BundleError(f"bundle {root} is incomplete: {rel} is missing", hint="rebuild it with `mvd compile`")
        if path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
            raise BundleError(f"bundle {root} was modified: {rel} does not match its checksum",
                              hint="rebuild it with `mvd compile`, or restore the original file")
