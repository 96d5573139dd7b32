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


def quantize_point(x: torch.Tensor, point: QuantPoint) -> torch.Tensor:
    """The integers a deployed kernel sees for ``x`` at ``point``: uniform codes (int32, in the point's integer
    range) or log-domain indices (int32, ``log_zero_code`` for zero). AdaLog/log2 with a ``shift`` quantize
    ``x + shift``."""
    g, bits, kind = point.granularity, point.bits, point.kind
    if kind in (QuantKind.UNIFORM_SYM, QuantKind.UNIFORM_ASYM):
        s, z = _uniform_params(point, x.dtype)
        return quantize_uniform(x, s, z, bits, symmetric=kind is QuantKind.UNIFORM_SYM, granularity=g)
    if kind is QuantKind.SULQ:
        assert point.eta is not None and point.log_min is not None and point.log_max is not None
        return quantize_sulq(x, point.eta, point.log_min, point.log_max, bits, steps=point.sulq_steps)
    xs = x + point.shift if point.shift else x
    s = torch.tensor(point.scale, dtype=x.dtype)
    if kind is QuantKind.LOG2:
        return quantize_log2(xs, s, bits, granularity=g)
    assert point.log_q is not None
    return quantize_adalog(xs, s, point.log_q, bits, granularity=g)


def dequantize_point(q: torch.Tensor, point: QuantPoint, *, fold: bool = True,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Float values of ``quantize_point``'s integers. A ``shift`` is subtracted again unless ``point.shift_folded``
    and ``fold`` (then the next layer's bias carries it, §4.2)."""
    g, bits, kind = point.granularity, point.bits, point.kind
    if kind in (QuantKind.UNIFORM_SYM, QuantKind.UNIFORM_ASYM):
        s, z = _uniform_params(point, dtype)
        return dequantize_uniform(q, s, z, granularity=g, dtype=dtype)
    if kind is QuantKind.SULQ:
        assert point.eta is not None and point.log_min is not None and point.log_max is not None
        return dequantize_sulq(q, point.eta, point.log_min, point.log_max, bits, steps=point.sulq_steps, dtype=dtype)
    s = torch.tensor(point.scale, dtype=dtype)
    if kind is QuantKind.LOG2:
        deq = dequantize_log2(q, s, bits, granularity=g, dtype=dtype)
    else:
        assert point.log_q is not None
        deq = dequantize_adalog(q, s, point.log_q, bits, granularity=g, dtype=dtype)
    if point.shift and not (fold and point.shift_folded):
        deq = deq - point.shift
    return deq


def _uniform_params(point: QuantPoint, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    zp = point.zero_point or [0] * len(point.scale)
    return torch.tensor(point.scale, dtype=dtype), torch.tensor(zp, dtype=dtype)


def fake_quantize(x: torch.Tensor, point: QuantPoint, *, fold: bool = True) -> torch.Tensor:
    """``dequantize(quantize(x))`` for any kind (``quantize_point`` then ``dequantize_point``)."""
    return dequantize_point(quantize_point(x, point), point, fold=fold, dtype=x.dtype)


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


_INT32_MAX = 2**31 - 1
_UNIFORM = (QuantKind.UNIFORM_SYM, QuantKind.UNIFORM_ASYM)


def bias_scale(weight_point: QuantPoint | None, input_point: QuantPoint | None) -> torch.Tensor | None:
    """The int32 bias step s_x·s_w per output channel (float32 product), as integer kernels add the bias to the
    accumulator; None unless both points are uniform and the input has one scale (then the bias stays float)."""
    if weight_point is None or input_point is None or weight_point.kind not in _UNIFORM \
            or input_point.kind not in _UNIFORM or len(input_point.scale) != 1:
        return None
    return torch.tensor(weight_point.scale, dtype=torch.float32) * torch.tensor(input_point.scale[0],
                                                                                dtype=torch.float32)


def quantize_bias(bias: torch.Tensor, weight_point: QuantPoint | None,
                  input_point: QuantPoint | None) -> torch.Tensor | None:
    """``round(bias / (s_x·s_w))`` as int32 (XNNPACK, ONNX Runtime's QLinearConv and integer TVM all take the bias
    this way); None when ``bias_scale`` is None or a code would not fit int32 (e.g. a dead weight channel)."""
    scale = bias_scale(weight_point, input_point)
    if scale is None:
        return None
    codes = torch.round(bias.detach().float() / scale)
    return None if bool((codes.abs() > _INT32_MAX).any()) else codes.to(torch.int32)


class _QuantWeightMixin:
    """Shared by QuantConv2d / QuantLinear: cached fake-quant weight, optional input quantizer, the bias (int32
    codes · s_x·s_w when both points are uniform, as integer kernels add it; float otherwise), folded shift."""

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
        bias = self._float_bias()
        self.bias_codes = None if bias is None else quantize_bias(bias, weight_point, input_point)
        self.bias_fq = None
        if self.bias_codes is not None:
            self.bias_fq = self.bias_codes.to(torch.float32) * bias_scale(weight_point, input_point)

    def _float_bias(self) -> torch.Tensor | None:
        if self.bias_delta is None:
            return self.bias
        return self.bias_delta if self.bias is None else self.bias + self.bias_delta

    def _bias(self) -> torch.Tensor | None:
        return self.bias_fq if self.bias_fq is not None else self._float_bias()

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
