"""Loading official checkpoints: mmseg ``{'state_dict'}``, ``{'model'}``, ``{'state_dict_ema'}`` or a raw state dict.

Always ``weights_only=True``. Numpy arrays and scalars (which mmcv writes into a checkpoint's ``meta``) are
allowed explicitly; anything else that would need code to unpickle is refused with the offending global named.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy._core import multiarray as _np_multiarray
from torch import nn

from mobilevit_deploy.errors import CheckpointError

_CONTAINER_KEYS = ("state_dict_ema", "state_dict", "model")
_NUMPY_SAFE_GLOBALS: list = [
    np.ndarray,
    np.dtype,
    _np_multiarray._reconstruct,
    (_np_multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    _np_multiarray.scalar,
    (_np_multiarray.scalar, "numpy.core.multiarray.scalar"),
    *(getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")),
]


@dataclass
class LoadReport:
    """What a load did: which container it read, how many tensors it loaded, and what it skipped and why."""

    path: str
    container: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    prefix_added: str = ""

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {self.container!r} of {self.path}"]
        if self.prefix_added:
            parts.append(f"keys prefixed with {self.prefix_added!r}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} skipped for shape ({_describe_mismatch(self.mismatched)})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_first(self.unexpected)})")
        return "; ".join(parts)


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def _describe_mismatch(rows: list[tuple[str, tuple[int, ...], tuple[int, ...]]], n: int = 3) -> str:
    text = ", ".join(f"{k}: checkpoint {_shape(a)} vs model {_shape(b)}" for k, a, b in rows[:n])
    return text + (", ..." if len(rows) > n else "")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file safely and return its state dict and the container key it came from."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", hint="check the path")
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL (\S+)", str(err))
        if unsafe:
            raise CheckpointError(
                f"refused to load {path}: it contains pickled code ({unsafe.group(1)}) that would run when loaded",
                hint="only tensors, containers and numpy metadata are accepted; re-save it as a plain state dict "
                "with torch.save(model.state_dict(), ...) from a source you trust",
            ) from None
        raise _not_a_checkpoint(path, err) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile, AttributeError) as err:
        raise _not_a_checkpoint(path, err) from None
    return _unwrap(obj, path)


def _not_a_checkpoint(path: Path, err: Exception) -> CheckpointError:
    reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
    return CheckpointError(f"{path} is not a PyTorch checkpoint ({reason})",
                           hint="pass a .pth/.pt file written by torch.save")


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict",
                              hint="expected {'state_dict': ...}, {'model': ...} or a dict of tensors")
    container = next((k for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
    state = obj[container] if container else obj
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6]))
        raise CheckpointError(f"{path} contains no tensors (top-level keys: {keys})",
                              hint="expected {'state_dict': ...}, {'model': ...} or a dict of tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors, container or "raw"


def _best_prefix(ckpt_keys: set[str], model_keys: set[str]) -> str:
    """'' normally; 'backbone.' when the checkpoint is a bare backbone (ImageNet weights into a segmenter)."""
    return max(("", "backbone."), key=lambda p: len({p + k for k in ckpt_keys} & model_keys))


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True, model_name: str | None = None
                    ) -> LoadReport:
    """Load an official-format checkpoint into ``model``.

    Strict (the default) refuses any missing, unexpected or differently shaped tensor and names the first ones
    (and the variant the checkpoint seems to belong to). Non-strict loads every tensor whose key and shape match.
    BatchNorm ``num_batches_tracked`` counters are not required (older checkpoints lack them).
    """
    state, container = read_checkpoint(path)
    target = model.state_dict()
    prefix = _best_prefix(set(state), set(target))
    state = {prefix + k: v for k, v in state.items()}

    matched, mismatched = {}, []
    for key, value in state.items():
        if key in target:
            if tuple(value.shape) == tuple(target[key].shape):
                matched[key] = value
            else:
                mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
    report = LoadReport(
        path=str(path), container=container, loaded=len(matched),
        missing=[k for k in target if k not in state and not k.endswith("num_batches_tracked")],
        unexpected=[k for k in state if k not in target], mismatched=mismatched, prefix_added=prefix,
    )
    name = model_name or type(model).__name__
    if not matched:
        raise CheckpointError(f"no tensor in {path} matches {name} ({_first(list(state))} ...)",
                              hint="is this a checkpoint of another model family?")
    if strict and not report.complete:
        problems = []
        if mismatched:
            problems.append(f"{len(mismatched)} tensors differ in shape ({_describe_mismatch(mismatched)})")
        if report.missing:
            problems.append(f"{len(report.missing)} missing ({_first(report.missing)})")
        if report.unexpected:
            problems.append(f"{len(report.unexpected)} unexpected ({_first(report.unexpected)})")
        guess = _guess_variant(state, model_name)
        hint = (f"it looks like a {guess} checkpoint" if guess
                else "pass strict=False (--no-strict) to load only what matches")
        raise CheckpointError(f"checkpoint {path} does not fit {name}: " + "; ".join(problems), hint=hint)
    model.load_state_dict(matched, strict=False)
    return report


def _guess_variant(state: dict[str, torch.Tensor], model_name: str | None) -> str | None:
    """The registered variant whose state dict has exactly these keys and shapes (class count aside)."""
    from ._registry import _REGISTRY

    wanted = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for name, (_info, builder) in _REGISTRY.items():
        if name == model_name:
            continue
        with torch.device("meta"):
            candidate = builder(num_classes=_info.num_classes).state_dict()
        shapes = {k: tuple(v.shape) for k, v in candidate.items() if not k.endswith("num_batches_tracked")}
        if shapes.keys() == wanted.keys() and sum(shapes[k] != wanted[k] for k in shapes) <= 2:
            return name
    return None
