"""ONNX translations of ``mvd_qdq::quantize`` / ``dequantize``: standard ops only, so ONNX Runtime and TVM run them.

* uniform: ``QuantizeLinear`` → (``Clip`` to the point's integer range when it is narrower than the storage type)
  and ``DequantizeLinear``, per tensor or per axis (a per-axis *activation* is dequantized as ``(q − zp)·s`` in
  float ops instead, see ``_per_axis_activation_values``). Asymmetric codes [0, 2^B − 1] are uint8, symmetric codes
  [−(2^(B−1) − 1), 2^(B−1) − 1] int8 (ONNX Runtime's preferred U8 activations / S8 weights for the usual configs).
* log2 and AdaLog (§4.2): index = ``round(−log_b(clamp(x/s, 1e-15, 1)))`` guessed with ``Log``, then made exact by
  comparing x/s with the two neighbouring decision thresholds (``Gather`` from ``adalog_thresholds``), exactly as
  ``quant.primitives`` decides it; dequantization is the hardware path: ``2^(−shift[i]) · mantissa[i] · s`` with
  the shift and the 2^B-entry mantissa tables (plus the zero code's entry, 0).
* SULQ (§5.1): index from ``log2(x + η)`` uniform in [min, max], corrected against ``sulq_thresholds``; power-of-two
  reconstruction ``2^exponent[i] − η`` with the exponent table.
Every table is the one ``quant.primitives`` computes, so indices and values match it bit for bit (tested).
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir
import onnxscript.onnx_opset
import torch

from mobilevit_deploy.quant.enums import QuantKind
from mobilevit_deploy.quant.granularity import PerTensor
from mobilevit_deploy.quant.primitives import (
    ADALOG_R,
    adalog_mantissa_table,
    adalog_shift_table,
    adalog_thresholds,
    sulq_exponents,
    sulq_max_index,
    sulq_step,
    sulq_thresholds,
    uniform_qrange,
)
from mobilevit_deploy.quant.table import QuantPoint, TensorRole

from . import ops

_INT64 = ir.DataType.INT64
_INT32 = ir.DataType.INT32
_FLOAT = ir.DataType.FLOAT
_LOG_CLAMP_MIN = np.float32(1e-15)  # as quant.primitives

Value = Any  # a graph value while the exporter traces a translation
Opset = Any  # an onnxscript opset (``onnxscript.onnx_opset.opsetNN``)
Const = Callable[[np.ndarray], Value]


def translations(opset: int) -> dict:
    """The ``custom_translation_table`` for ``torch.onnx.export`` at ``opset``."""
    op = getattr(onnxscript.onnx_opset, f"opset{opset}")

    def const(value: np.ndarray) -> Value:
        return op.Constant(value=ir.tensor(np.asarray(value)))

    def quantize(x, spec: str):  # traced by the exporter: x is a graph value
        point, rank = ops.parse_spec(spec)
        if point.kind in (QuantKind.UNIFORM_ASYM, QuantKind.UNIFORM_SYM):
            return _uniform_quantize(op, const, x, point)
        if point.kind is QuantKind.SULQ:
            return _sulq_index(op, const, x, point)
        return _adalog_index(op, const, x, point, rank)

    def dequantize(q, spec: str):
        point, rank = ops.parse_spec(spec)
        if point.kind in (QuantKind.UNIFORM_ASYM, QuantKind.UNIFORM_SYM):
            scale, zero, axis = _uniform_params(point)
            if axis and point.role is not TensorRole.WEIGHT:
                return _per_axis_activation_values(op, const, q, point, rank)
            return op.DequantizeLinear(q, const(scale), const(zero), **axis)
        if point.kind is QuantKind.SULQ:
            return _sulq_values(op, const, q, point)
        return _adalog_values(op, const, q, point, rank)

    def dequantize_bias(codes, scale: list[float]):  # traced: an int32 DequantizeLinear (zero point 0)
        return op.DequantizeLinear(codes, const(np.asarray(scale, np.float32)), axis=0)

    return {torch.ops.mvd_qdq.quantize.default: quantize, torch.ops.mvd_qdq.dequantize.default: dequantize,
            torch.ops.mvd_qdq.dequantize_bias.default: dequantize_bias}


def _per_tensor(point: QuantPoint) -> bool:
    return isinstance(point.granularity, PerTensor) or len(point.scale) == 1


def _uniform_params(point: QuantPoint) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Scale (float32), zero point (uint8 or int8) and the ``axis`` attribute (none when per tensor)."""
    dtype = np.uint8 if point.kind is QuantKind.UNIFORM_ASYM else np.int8
    zero = point.zero_point or [0] * len(point.scale)
    if _per_tensor(point):
        return np.float32(point.scale[0]), np.asarray(zero[0], dtype), {}
    return np.asarray(point.scale, np.float32), np.asarray(zero, dtype), {"axis": point.granularity.axis}


def _uniform_quantize(op: Opset, const: Const, x: Value, point: QuantPoint) -> Value:
    scale, zero, axis = _uniform_params(point)
    q = op.QuantizeLinear(x, const(scale), const(zero), **axis)
    qmin, qmax = uniform_qrange(point.bits, point.kind is QuantKind.UNIFORM_SYM)
    info = np.iinfo(zero.dtype)
    if (qmin, qmax) != (info.min, info.max):  # fewer bits than the storage type, or int8's narrow range
        q = op.Clip(q, const(np.asarray(qmin, zero.dtype)), const(np.asarray(qmax, zero.dtype)))
    return q


def _per_axis_activation_values(op: Opset, const: Const, q: Value, point: QuantPoint, rank: int) -> Value:
    """``(q − zp) · s`` per axis in float ops: the same values as DequantizeLinear (small integers convert exactly),
    written out because ONNX Runtime 1.31 fuses a per-axis DequantizeLinear → MatMul into MatMulIntegerToFloat and
    then fails at run time ("Per-Channel is not supported yet")."""
    zero = np.asarray(point.zero_point or [0] * len(point.scale), np.float32)
    centred = op.Sub(op.Cast(q, to=_FLOAT), const(zero.reshape(_axis_shape(point, rank))))
    return op.Mul(centred, const(_log_scale(point, rank)))


def _axis_shape(point: QuantPoint, rank: int) -> list[int]:
    shape = [1] * rank
    shape[point.granularity.axis] = len(point.scale)
    return shape


def _log_scale(point: QuantPoint, rank: int) -> np.ndarray:
    """The scale as a constant that broadcasts against the tensor (a scalar, or C values along the axis)."""
    if _per_tensor(point):
        return np.float32(point.scale[0])
    return np.asarray(point.scale, np.float32).reshape(_axis_shape(point, rank))


def _log_q(point: QuantPoint) -> int:
    return ADALOG_R if point.kind is QuantKind.LOG2 else int(point.log_q)


def _corrected(op: Opset, const: Const, x: Value, level: Value, thresholds: np.ndarray, top: int,
               rising: bool) -> Value:
    """``round(level)`` moved one step where x lies beyond a neighbouring threshold (see primitives)."""
    i0 = op.Cast(op.Clip(op.Round(level), const(np.float32(0)), const(np.float32(top))), to=_INT64)
    table = const(thresholds.astype(np.float32))
    here, nxt = op.Gather(table, i0), op.Gather(table, op.Add(i0, const(np.int64(1))))
    if rising:
        up, down = op.GreaterOrEqual(x, nxt), op.Less(x, here)
    else:
        up, down = op.LessOrEqual(x, nxt), op.Greater(x, here)
    idx = op.Sub(op.Add(i0, op.Cast(up, to=_INT64)), op.Cast(down, to=_INT64))
    return op.Cast(idx, to=_INT32)


def _adalog_index(op: Opset, const: Const, x: Value, point: QuantPoint, rank: int) -> Value:
    q = _log_q(point)
    if point.shift:
        x = op.Add(x, const(np.float32(point.shift)))
    xs = op.Clip(op.Div(x, const(_log_scale(point, rank))), const(_LOG_CLAMP_MIN), const(np.float32(1.0)))
    level = op.Mul(op.Log(xs), const(np.float32(-ADALOG_R / (q * math.log(2.0)))))
    return _corrected(op, const, xs, level, adalog_thresholds(q, point.bits).numpy(), 2**point.bits, rising=False)


def _adalog_values(op: Opset, const: Const, idx: Value, point: QuantPoint, rank: int) -> Value:
    q = _log_q(point)
    shift = np.append(adalog_shift_table(q, point.bits).numpy(), 0).astype(np.int32)  # + the zero code's entry
    mantissa = np.append(adalog_mantissa_table(q, point.bits).numpy(), 0).astype(np.float32)
    power = op.Pow(const(np.float32(2.0)), op.Neg(op.Cast(op.Gather(const(shift), idx), to=_FLOAT)))
    deq = op.Mul(op.Mul(power, op.Gather(const(mantissa), idx)), const(_log_scale(point, rank)))
    if point.shift and not point.shift_folded:
        deq = op.Sub(deq, const(np.float32(point.shift)))
    return deq


def _sulq_index(op: Opset, const: Const, x: Value, point: QuantPoint) -> Value:
    top = sulq_max_index(point.bits, point.sulq_steps)
    y = op.Max(op.Add(x, const(np.float32(point.eta))), const(np.float32(np.finfo(np.float32).tiny)))
    lo = np.float32(point.log_min)
    delta = np.float32(sulq_step(point.log_min, point.log_max, point.bits, point.sulq_steps))
    level = op.Div(op.Sub(op.Mul(op.Log(y), const(np.float32(1 / math.log(2.0)))), const(lo)), const(delta))
    thresholds = sulq_thresholds(point.log_min, point.log_max, point.bits, steps=point.sulq_steps).numpy()
    return _corrected(op, const, y, level, thresholds, top, rising=True)


def _sulq_values(op: Opset, const: Const, idx: Value, point: QuantPoint) -> Value:
    top = sulq_max_index(point.bits, point.sulq_steps)
    exponents = sulq_exponents(torch.arange(top + 1), point.log_min, point.log_max, point.bits,
                               steps=point.sulq_steps).numpy().astype(np.int32)
    power = op.Pow(const(np.float32(2.0)), op.Cast(op.Gather(const(exponents), idx), to=_FLOAT))
    return op.Sub(power, const(np.float32(point.eta)))
