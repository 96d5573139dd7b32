"""PyTorch → ONNX with the dynamo exporter (static shapes, one self-contained file), verified by ONNX Runtime.

The dynamo exporter is used because it produces a static graph without Shape/Gather chains on these models
(the TorchScript exporter leaves them in) and is the exporter PyTorch keeps developing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import ExportError

from .verify import Agreement, verify_against_torch

SUPPORTED_OPSETS = range(18, 24)
DEFAULT_OPSET = 18


@dataclass(frozen=True)
class ExportResult:
    path: Path
    opset: int
    input_size: int
    seconds: float
    agreement: Agreement
    size_bytes: int


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger (the exporter logs torchvision notices that are not about the user's model)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(model: nn.Module, output: str | Path, input_size: int, opset: int = DEFAULT_OPSET,
                rel_tol: float = 1e-4) -> ExportResult:
    """Export ``model`` for a 1×3×S×S input, verify it against PyTorch, and write ``output`` atomically."""
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"unsupported opset {opset}",
                          hint=f"use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}")
    info = getattr(model, "info", None)
    if info is not None:
        info.check_input_size(input_size)
    model = model.eval()
    x = torch.zeros(1, 3, input_size, input_size)
    start = time.perf_counter()
    with atomic_path(output) as tmp:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), str(tmp), dynamo=True, opset_version=opset, input_names=["input"],
                                  output_names=["logits"], external_data=False, verbose=False)
        except Exception as err:  # the exporter raises many types; name the cause in one line
            cause = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise ExportError(f"ONNX export of {type(model).__name__} failed: {cause}") from err
        agreement = verify_against_torch(model, tmp, input_size)
        if not agreement.ok(rel_tol):
            raise ExportError(
                f"exported model disagrees with PyTorch: relative max diff {agreement.rel_max_diff:.2e}, "
                f"argmax agreement {agreement.argmax_agreement:.4f}", hint="please report this as a bug")
        size = tmp.stat().st_size
    return ExportResult(Path(output), opset, input_size, time.perf_counter() - start, agreement, size)
