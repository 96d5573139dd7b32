"""Export modules: the fake-quant model's layers rewritten with ``mvd_qdq`` ops so the graph carries the points.

A weight is stored as its integer codes (a uint8/int8 buffer, which becomes the ONNX initializer) and dequantized
by the op; an input goes through ``quantize`` → ``dequantize``. The bias is the fake-quant layer's: int32 codes of
s_x·s_w (an int32 DequantizeLinear) when input and weight are uniform, float otherwise (after a log-domain input,
including a folded post-GELU shift). An int32 bias is also what keeps ONNX Runtime exact: given a float bias next
to a QDQ conv, its ``WeightBiasQuantization`` pass rounds the bias to int32 itself, and the fake-quant model would
no longer match. Eager outputs equal the fake-quant model's exactly (same primitives); only the graph's form
differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.quant.fake_quant import QuantConv2d, QuantLinear, bias_scale, quantize_point
from mobilevit_deploy.quant.table import QuantPoint

from . import ops


class _QDQLayer(nn.Module):
    """Shared by conv and linear: integer weight codes, the bias (int32 codes or float), the input point."""

    def __init__(self, fq: QuantConv2d | QuantLinear, weight: QuantPoint | None, inp: QuantPoint | None) -> None:
        super().__init__()
        self.weight_point, self.input_point = weight, inp
        w = fq.weight.detach()
        if weight is not None:
            self.register_buffer("weight_codes", quantize_point(w, weight).to(ops.code_dtype(weight)))
            self.weight_spec = ops.point_spec(weight, w.shape)
        else:
            self.register_buffer("weight_float", w.clone())
        self.bias_scale = None
        if fq.bias_codes is not None:
            self.register_buffer("bias_codes", fq.bias_codes.clone())
            self.bias_scale = bias_scale(weight, inp).tolist()
        bias = fq._float_bias() if fq.bias_codes is None else None
        self.register_buffer("bias_float", None if bias is None else bias.detach().clone())

    def _weight(self) -> torch.Tensor:
        if self.weight_point is None:
            return self.weight_float
        return torch.ops.mvd_qdq.dequantize(self.weight_codes, self.weight_spec)

    def _bias(self) -> torch.Tensor | None:
        if self.bias_scale is None:
            return self.bias_float
        return torch.ops.mvd_qdq.dequantize_bias(self.bias_codes, self.bias_scale)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_point is None else ops.fake_quant(x, self.input_point)


class QDQConv2d(_QDQLayer):
    """A Conv2d whose input, weight and bias reach the graph as their table points (zero padding only)."""

    def __init__(self, conv: nn.Conv2d, weight: QuantPoint | None, inp: QuantPoint | None) -> None:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ExportError(f"QDQ export supports zero-padded convs with explicit padding, not "
                              f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
        super().__init__(QuantConv2d.from_float(conv, weight, inp), weight, inp)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self._input(x), self._weight(), self._bias(), self.stride, self.padding, self.dilation,
                        self.groups)


class QDQLinear(_QDQLayer):
    """A Linear whose input, weight and bias reach the graph as their table points."""

    def __init__(self, linear: nn.Linear, weight: QuantPoint | None, inp: QuantPoint | None) -> None:
        super().__init__(QuantLinear.from_float(linear, weight, inp), weight, inp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._input(x), self._weight(), self._bias())


class QDQMatMul(nn.Module):
    """``a @ b`` with each input through its point (uniform Q/DQ, or a log quantizer for the Softmax output)."""

    def __init__(self, point_a: QuantPoint | None, point_b: QuantPoint | None) -> None:
        super().__init__()
        self.point_a, self.point_b = point_a, point_b

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.point_a is not None:
            a = ops.fake_quant(a, self.point_a)
        if self.point_b is not None:
            b = ops.fake_quant(b, self.point_b)
        return torch.matmul(a, b)


def qdq_module(m: nn.Module, weight: QuantPoint | None, inp: QuantPoint | None,
               inp1: QuantPoint | None) -> nn.Module:
    """The ``quant.api.LayerFactory`` of the QDQ export: ``apply_table(model, table, factory=qdq_module)``."""
    if isinstance(m, nn.Conv2d):
        return QDQConv2d(m, weight, inp)
    if isinstance(m, nn.Linear):
        return QDQLinear(m, weight, inp)
    return QDQMatMul(inp, inp1)
