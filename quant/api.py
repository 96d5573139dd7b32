"""``quantize(model, config, calib) -> QuantizedModel``: the one quantization call (DESIGN.md, quantization seam).

Steps: deep-copy the model (the caller's stays untouched) → find the sites with one traced forward (``sites``) →
capture FP samples over the calibration set in batches (``capture``) → the config's registered handler picks every
point's parameters (``calibrate``) → the fake-quant model is built *from the table* (``apply_table``), so a saved
table reloads into the identical forward.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .capture import Calibration, Progress, capture
from .config import QuantConfig
from .errors import QuantConfigError, QuantTableError
from .fake_quant import QuantConv2d, QuantLinear, QuantMatMul
from .registry import get_quant_handler
from .sites import find_sites, is_target
from .table import QuantPoint, QuantTable, TensorRole


class QuantizedModel(nn.Module):
    """The fake-quant model (``.module``; ``forward`` runs it) and its quantization table (``.table``)."""

    def __init__(self, module: nn.Module, table: QuantTable, config: QuantConfig | None = None,
                 timings: dict[str, float] | None = None) -> None:
        super().__init__()
        self.module = module
        self.table = table
        self.config = config
        self.timings = timings or {}

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.module(*args)

    def save_table(self, path: str | Path) -> Path:
        return self.table.save(path)

    @classmethod
    def from_table(cls, model: nn.Module, table: QuantTable | str | Path) -> QuantizedModel:
        """Rebuild from a float model and a saved table (no calibration)."""
        if not isinstance(table, QuantTable):
            table = QuantTable.load(table)
        return cls(apply_table(model, table), table)


def calibration_batches(calib: Iterable[torch.Tensor] | torch.Tensor, *, batch_size: int = 8,
                        input_size: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """Calibration inputs as a list of [b, C, H, W] batches. Images of another size than ``input_size`` (default:
    the first image's) are resized bilinearly with a warning; an empty set is an error."""
    if isinstance(calib, torch.Tensor):
        calib = [calib]
    images: list[torch.Tensor] = []
    for item in calib:
        t = torch.as_tensor(item).float()
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4:
            raise QuantConfigError(f"calibration inputs must be [N, C, H, W] or [C, H, W], got shape {tuple(t.shape)}")
        images.extend(t)
    if not images:
        raise QuantConfigError("the calibration set is empty", hint="pass at least one image (default: 32)")
    size = input_size or tuple(images[0].shape[-2:])
    resized = 0
    for i, img in enumerate(images):
        if tuple(img.shape[-2:]) != tuple(size):
            images[i] = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
            resized += 1
    if resized:
        warnings.warn(f"{resized} calibration image(s) were not {size[0]}x{size[1]} and were resized bilinearly",
                      stacklevel=3)
    stacked = torch.stack(images)
    return list(stacked.split(batch_size))


def quantize(model: nn.Module, config: QuantConfig, calib_data: Iterable[torch.Tensor] | torch.Tensor, *,
             batch_size: int = 8, input_size: tuple[int, int] | None = None, rows: int = 4096, seed: int = 0,
             progress: Progress | None = None) -> QuantizedModel:
    """Calibrate ``config`` on ``calib_data`` and return the fake-quant model with its table.

    ``rows``: patch rows per layer kept for the search objective and range statistics (``capture``)."""
    if not isinstance(config, QuantConfig):
        raise QuantConfigError(f"quantize() needs a QuantConfig, got {type(config).__name__}")
    handler = get_quant_handler(config)
    t0 = time.perf_counter()
    batches = calibration_batches(calib_data, batch_size=batch_size, input_size=input_size)
    fp = copy.deepcopy(model).eval()
    sites = find_sites(fp, batches[0][:1])
    captured = capture(fp, sites, batches, rows=rows, seed=seed, progress=progress)
    t1 = time.perf_counter()
    table = handler(fp, config, Calibration(sites, captured, progress))
    t2 = time.perf_counter()
    qmodel = apply_table(model, table)
    return QuantizedModel(qmodel, table, config,
                          {"calibration_s": t1 - t0, "search_s": t2 - t1, "total_s": time.perf_counter() - t0})


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def apply_table(model: nn.Module, table: QuantTable) -> nn.Module:
    """A deep copy of ``model`` with the fake-quant module of every table point swapped in by module path."""
    out = copy.deepcopy(model).eval()
    by_module: dict[str, dict[tuple[str, int], QuantPoint]] = {}
    for p in table:
        by_module.setdefault(p.module, {})[(p.role.value, p.input_index)] = p
    for path, points in by_module.items():
        try:
            m = out.get_submodule(path)
        except AttributeError:
            raise QuantTableError(f"the table names module {path!r}, which this model does not have",
                                  hint="was the table made for another model?") from None
        if not is_target(m):
            raise QuantTableError(f"table module {path!r} is a {type(m).__name__}, not a Conv2d/Linear/MatMul")
        weight = points.get((TensorRole.WEIGHT.value, 0))
        inp = next((points[k] for k in [(r.value, 0) for r in (TensorRole.INPUT, TensorRole.GELU_OUT,
                                                                TensorRole.SOFTMAX)] if k in points), None)
        if isinstance(m, nn.Conv2d):
            _set_submodule(out, path, QuantConv2d.from_float(m, weight, inp))
        elif isinstance(m, nn.Linear):
            _set_submodule(out, path, QuantLinear.from_float(m, weight, inp))
        else:
            _set_submodule(out, path, QuantMatMul(inp, points.get((TensorRole.INPUT.value, 1))))
    return out

