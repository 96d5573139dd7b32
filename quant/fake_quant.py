"""Fake-quant modules: each runs ``dequantize(quantize(x))`` with the parameters of one ``QuantPoint``.

Why modules built *from table rows*: the table is the single source of truth (DESIGN.md, quantization seam), so a
saved ``q.json`` rebuilds the identical forward (``api.apply_table``). ``QuantConv2d`` / ``QuantLinear`` subclass
the float layers so parameter names (``weight``, ``bias``) and state-dict keys stay those of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .enums import QuantKind
from .primitives import (
    dequantize_adalog,
    dequantize_log2,
    dequantize_sulq,
    dequantize_uniform,
    quantize_adalog,
    quantize_log2,
    quantize_sulq,
    quantize_uniform,
)
from .table import QuantPoint


def fake_quantize(x: torch.Tensor, point: QuantPoint, *, fold: bool = True) -> torch.Tensor:
    """``dequantize(quantize(x))`` for any kind. AdaLog/log2 with a ``shift`` quantize ``x + shift``; the shift is
    subtracted again unless ``point.shift_folded`` and ``fold`` (then the next layer's bias carries it, §4.2)."""
    g, bits, dt = point.granularity, point.bits, x.dtype
    kind = point.kind
    if kind in (QuantKind.UNIFORM_SYM, QuantKind.UNIFORM_ASYM):
        zp = point.zero_point or [0] * len(point.scale)
        s, z = torch.tensor(point.scale, dtype=dt), torch.tensor(zp, dtype=dt)
        idx = quantize_uniform(x, s, z, bits, symmetric=kind is QuantKind.UNIFORM_SYM, granularity=g)
        return dequantize_uniform(idx, s, z, granularity=g, dtype=dt)
    if kind is QuantKind.SULQ:
        assert point.eta is not None and point.log_min is not None and point.log_max is not None
        steps = point.sulq_steps
        idx = quantize_sulq(x, point.eta, point.log_min, point.log_max, bits, steps=steps)
        return dequantize_sulq(idx, point.eta, point.log_min, point.log_max, bits, steps=steps, dtype=dt)
    shift = point.shift or 0.0
    xs = x + shift if shift else x
    s = torch.tensor(point.scale, dtype=dt)
    if kind is QuantKind.LOG2:
        deq = dequantize_log2(quantize_log2(xs, s, bits, granularity=g), s, bits, granularity=g, dtype=dt)
    else:
        assert point.log_q is not None
        idx = quantize_adalog(xs, s, point.log_q, bits, granularity=g)
        deq = dequantize_adalog(idx, s, point.log_q, bits, granularity=g, dtype=dt)
    if shift and not (fold and point.shift_folded):
        deq = deq - shift
    return deq


class ActQuantizer(nn.Module):
    """Fake-quantizes one activation tensor (a layer input, the attention probabilities, a post-GELU map)."""

    def __init__(self, point: QuantPoint) -> None:
        super().__init__()
        self.point = point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quantize(x, self.point)

    def extra_repr(self) -> str:
        p = self.point
        return f"{p.role.value}[{p.input_index}] {p.kind.value} {p.bits}b"


def folded_bias_delta(w_q: torch.Tensor, shift: float) -> torch.Tensor:
    """``W_q · (−shift·1)`` per output channel (§4.2 ``reparam_bias``): exact for a Linear or a 1×1 unpadded conv,
    whose every output sees every shifted input once (a padded k×k conv would also see padding zeros)."""
    return -shift * w_q.reshape(w_q.shape[0], -1).sum(dim=1)


def can_fold_shift(layer: nn.Module) -> bool:
    """Whether a post-GELU shift may be folded into ``layer``'s bias exactly (see ``folded_bias_delta``)."""
    if isinstance(layer, nn.Linear):
        return True
    return (isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.padding) == (0, 0) if not isinstance(layer.padding, str) else False)


class _QuantWeightMixin:
    """Shared by QuantConv2d / QuantLinear: cached fake-quant weight, optional input quantizer, folded bias."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    weight_point: QuantPoint | None
    input_quant: ActQuantizer | None

    def set_points(self, weight_point: QuantPoint | None, input_point: QuantPoint | None) -> None:
        """Install the points; fold the input's shift into the bias when the point says it is folded."""
        self.weight_point = weight_point
        self.input_quant = ActQuantizer(input_point) if input_point is not None else None  # type: ignore[misc]
        w = self.weight.detach()
        self.weight_fq = fake_quantize(w, weight_point) if weight_point is not None else w
        self.bias_delta = None
        if input_point is not None and input_point.shift_folded and input_point.shift:
            self.bias_delta = folded_bias_delta(self.weight_fq, input_point.shift)

    def _bias(self) -> torch.Tensor | None:
        if self.bias_delta is None:
            return self.bias
        return self.bias_delta if self.bias is None else self.bias + self.bias_delta

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_quant(x) if self.input_quant is not None else x


class QuantConv2d(_QuantWeightMixin, nn.Conv2d):
    """nn.Conv2d with a per-output-channel fake-quant weight and a fake-quant input."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_point: QuantPoint | None,
                   input_point: QuantPoint | None) -> QuantConv2d:
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        new.load_state_dict(conv.state_dict())
        new.train(conv.training)
        new.set_points(weight_point, input_point)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self._quant_input(x), self.weight_fq.to(x.dtype), self._bias())


class QuantLinear(_QuantWeightMixin, nn.Linear):
    """nn.Linear with a per-output-channel fake-quant weight and a fake-quant input."""

    @classmethod
    def from_float(cls, lin: nn.Linear, weight_point: QuantPoint | None,
                   input_point: QuantPoint | None) -> QuantLinear:
        new = cls(lin.in_features, lin.out_features, lin.bias is not None, device=lin.weight.device,
                  dtype=lin.weight.dtype)
        new.load_state_dict(lin.state_dict())
        new.train(lin.training)
        new.set_points(weight_point, input_point)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._quant_input(x), self.weight_fq.to(x.dtype), self._bias())


class QuantMatMul(nn.Module):
    """``quant_a(a) @ quant_b(b)``: replaces a ``MatMul`` module (q @ k, attn @ v)."""

    def __init__(self, point_a: QuantPoint | None, point_b: QuantPoint | None) -> None:
        super().__init__()
        self.quant_a = ActQuantizer(point_a) if point_a is not None else nn.Identity()
        self.quant_b = ActQuantizer(point_b) if point_b is not None else nn.Identity()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.quant_a(a), self.quant_b(b))
