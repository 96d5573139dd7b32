"""A content-addressed cache of built artifacts: the same model, weights, size and toolchain give the same file.

Lowering to XNNPACK takes 20–70 s and a TVM build 10–20 s whatever the input size, and one ``.pte`` serves host
and aarch64 alike; compiling a model for a second arch or rebuilding an unchanged bundle reuses the file.
Keys hash the inputs that decide the output (weights, model source, input size, profile, tool versions), so a
stale hit is not possible short of a hash collision. ``MVD_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilevit_deploy.atomic import atomic_path


def cache_root() -> Path:
    return Path(os.environ.get("MVD_CACHE") or Path.home() / ".cache" / "mobilevit-deploy") / "artifacts"


def _models_source_digest() -> str:
    """The model code itself: a change to a forward changes the artifact even with the same weights."""
    import mobilevit_deploy.models as models_pkg

    digest = hashlib.sha256()
    for path in sorted(Path(models_pkg.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the model's class, source and every state-dict tensor."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(_models_source_digest().encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _key(parts: dict[str, Any]) -> str:
    versions = {d: importlib.metadata.version(d) for d in ("torch", "executorch", "apache-tvm", "onnx")}
    return hashlib.sha256(json.dumps({**parts, "versions": versions}, sort_keys=True).encode()).hexdigest()[:32]


def cached_build(kind: str, parts: dict[str, Any], dest: Path, build: Callable[[Path], dict[str, Any]]
                 ) -> tuple[dict[str, Any], bool]:
    """Put the artifact for ``parts`` at ``dest``: from the cache, or by ``build(dest) -> report`` then cached.

    Returns the build report and whether it was a cache hit.
    """
    if os.environ.get("MVD_NO_CACHE") == "1":
        return build(dest), False
    entry = cache_root() / kind / _key(parts)
    artifact, report_file = entry / "artifact", entry / "report.json"
    if artifact.is_file() and report_file.is_file():
        shutil.copy2(artifact, dest)
        return json.loads(report_file.read_text()), True
    report = build(dest)
    with atomic_path(entry, directory=True) as tmp:
        shutil.copy2(dest, tmp / "artifact")
        (tmp / "report.json").write_text(json.dumps(report, default=str))
    return report, False
