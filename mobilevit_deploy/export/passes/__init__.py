"""The ONNX export passes, in the order they run. Each is a module with ``NAME`` and ``run(model) -> model``;
any can be switched off by name (``mvd export --skip-pass NAME``) to find which one changes an output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import onnx

from . import fold_batchnorm, fold_constants, infer_shapes, remove_identity, static_pooling, to_fp16


@dataclass(frozen=True)
class OnnxPass:
    name: str
    run: Callable[[onnx.ModelProto], onnx.ModelProto]
    doc: str
    optional: bool = False
    """Runs only when asked for (fp16)."""


def _from(module: ModuleType, optional: bool = False) -> OnnxPass:
    return OnnxPass(module.NAME, module.run, (module.__doc__ or "").strip().split("\n")[0], optional)


PASSES: tuple[OnnxPass, ...] = (
    _from(remove_identity),
    _from(fold_constants),
    _from(fold_batchnorm),
    _from(static_pooling),
    _from(infer_shapes),
    _from(to_fp16, optional=True),
)
PASS_NAMES = tuple(dict.fromkeys(p.name for p in PASSES))


def select_passes(skip: set[str] | frozenset[str] = frozenset(), fp16: bool = False) -> list[OnnxPass]:
    """The passes to run, in order; unknown names in ``skip`` raise with the valid ones listed."""
    from mobilevit_deploy.errors import ExportError

    unknown = set(skip) - set(PASS_NAMES)
    if unknown:
        raise ExportError(f"unknown pass {', '.join(sorted(unknown))}", hint=f"passes: {', '.join(PASS_NAMES)}")
    return [p for p in PASSES if p.name not in skip and (fp16 or not p.optional)]
