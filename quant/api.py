"""``quantize(model, config, calib) -> QuantizedModel``: the one quantization call (DESIGN.md, quantization seam).

Steps: deep-copy the model (the caller's stays untouched) → find the sites with one traced forward (``sites``) →
capture FP samples over the calibration set in batches (``capture``) → the config's registered handler picks every
point's parameters (``calibrate``) → the fake-quant model is built *from the table* (``apply_table``), so a saved
table reloads into the identical forward. For deployment, quantize ``fold.fold_batchnorm(model)``: the table then
records ``bn_folded`` and only applies to (and exports from) a folded model.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .capture import Calibration, Progress, capture
from .config import QuantConfig
from .errors import QuantConfigError, QuantTableError
from .fake_quant import QuantConv2d, QuantLinear, QuantMatMul
from .fold import folding_state, set_submodule
from .granularity import PerChannel
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
    table.bn_folded = folding_state(model) is True
    t2 = time.perf_counter()
    qmodel = apply_table(model, table)
    return QuantizedModel(qmodel, table, config,
                          {"calibration_s": t1 - t0, "search_s": t2 - t1, "total_s": time.perf_counter() - t0})


LayerFactory = Callable[[nn.Module, QuantPoint | None, QuantPoint | None, QuantPoint | None], nn.Module]
"""``(float module, weight point, input point, matmul input-1 point) -> replacement``: what ``apply_table`` swaps
in at a table module (the input point is input 0's, the Softmax's or the post-GELU one)."""


def fake_quant_module(m: nn.Module, weight: QuantPoint | None, inp: QuantPoint | None,
                      inp1: QuantPoint | None) -> nn.Module:
    """The fake-quant replacement of a Conv2d, Linear or MatMul (the default ``LayerFactory``)."""
    if isinstance(m, nn.Conv2d):
        return QuantConv2d.from_float(m, weight, inp)
    if isinstance(m, nn.Linear):
        return QuantLinear.from_float(m, weight, inp)
    return QuantMatMul(inp, inp1)


_INPUT_ROLES = (TensorRole.INPUT, TensorRole.GELU_OUT, TensorRole.SOFTMAX)


def points_by_module(table: QuantTable) -> dict[str, tuple[QuantPoint | None, QuantPoint | None, QuantPoint | None]]:
    """Table rows grouped per module as (weight, input 0 / Softmax / post-GELU, matmul input 1), in table order."""
    grouped: dict[str, dict[tuple[str, int], QuantPoint]] = {}
    for p in table:
        grouped.setdefault(p.module, {})[(p.role.value, p.input_index)] = p
    out = {}
    for path, points in grouped.items():
        inp = next((points[(r.value, 0)] for r in _INPUT_ROLES if (r.value, 0) in points), None)
        out[path] = (points.get((TensorRole.WEIGHT.value, 0)), inp, points.get((TensorRole.INPUT.value, 1)))
    return out


def check_table(model: nn.Module, table: QuantTable) -> None:
    """Raise ``QuantTableError`` unless every table row fits ``model``: the BN-folding state matches, each module
    exists and is a Conv2d/Linear/MatMul, and per-channel parameters have one entry per channel of the layer."""
    state = folding_state(model)
    if table.bn_folded and state is False:
        raise QuantTableError("the table was made on a BN-folded model, but this model still has BatchNorm layers",
                              hint="fold it first: quant.fold.fold_batchnorm(model)")
    if not table.bn_folded and state is True:
        raise QuantTableError("the table was made on a model with BatchNorm, but this model is BN-folded",
                              hint="apply it to the unfolded model, or quantize the folded model again")
    for p in table:
        where = f"table point {p.module}:{p.role.value}[{p.input_index}]"
        try:
            m = model.get_submodule(p.module)
        except AttributeError:
            raise QuantTableError(f"the table names module {p.module!r}, which this model does not have",
                                  hint="was the table made for another model?") from None
        if not is_target(m):
            raise QuantTableError(f"table module {p.module!r} is a {type(m).__name__}, not a Conv2d/Linear/MatMul")
        layer = isinstance(m, nn.Conv2d | nn.Linear)
        allowed = ((TensorRole.WEIGHT, 0), *((r, 0) for r in _INPUT_ROLES)) if layer else \
            ((TensorRole.INPUT, 0), (TensorRole.SOFTMAX, 0), (TensorRole.INPUT, 1))
        if (p.role, p.input_index) not in allowed:
            raise QuantTableError(f"{where}: a {type(m).__name__} has no such quantization point",
                                  hint=f"{'Conv2d/Linear' if layer else 'MatMul'} points are "
                                       f"{', '.join(f'{r.value}[{i}]' for r, i in allowed)}")
        channels = _channels(m, p)
        if channels is not None and len(p.scale) not in (1, channels):
            raise QuantTableError(f"{where} has {len(p.scale)} per-channel scales, but the layer has {channels} "
                                  "channels there", hint="was the table made for another model or class count?")


def _channels(m: nn.Module, p: QuantPoint) -> int | None:
    """How many per-channel parameters ``p`` needs on layer ``m`` (None when only the data shape tells)."""
    if not isinstance(p.granularity, PerChannel) or not isinstance(m, nn.Conv2d | nn.Linear):
        return None
    if p.role is TensorRole.WEIGHT:
        axis = p.granularity.axis
        if not -m.weight.dim() <= axis < m.weight.dim():
            raise QuantTableError(f"table point {p.module}:weight is per channel along axis {axis}, but the weight "
                                  f"has {m.weight.dim()} dimensions")
        return m.weight.shape[axis]
    if isinstance(m, nn.Conv2d) and p.granularity.axis == 1:
        return m.in_channels
    return m.in_features if isinstance(m, nn.Linear) and p.granularity.axis == -1 else None


def apply_table(model: nn.Module, table: QuantTable, *, factory: LayerFactory = fake_quant_module) -> nn.Module:
    """A deep copy of ``model`` with ``factory``'s module (default: the fake-quant one) swapped in at every table
    module, by module path; the table is checked against the model first (``check_table``)."""
    check_table(model, table)
    out = copy.deepcopy(model).eval()
    for path, (weight, inp, inp1) in points_by_module(table).items():
        set_submodule(out, path, factory(out.get_submodule(path), weight, inp, inp1))
    return out
