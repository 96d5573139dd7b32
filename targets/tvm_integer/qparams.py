"""Read quantization parameters out of an imported QDQ Relax function: what each conv/matmul operand really is.

An operand of a float conv2d/matmul counts as quantized when it is ``dequantize(q, scale, zero_point)``, possibly
behind layout ops (reshape, permute_dims, expand_dims, squeeze, flatten) that move elements without changing
them. Two kinds come out:

- a **quantized constant** (weights, quantized bias): the integer values, scales and zero points are evaluated
  here with numpy, expanded to the full tensor shape and pushed through the same layout ops, so per-channel
  parameters end up on whatever axis the op sees (e.g. Gemm's ``transB`` weight arrives transposed);
- a **quantized activation**: a per-tensor dequantize of a runtime tensor; dequantize commutes with layout ops,
  so the integer tensor can take those ops itself and feed the integer op.

Everything else is a string saying why the operand is not usable, which ends up in the rewrite report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax
from tvm.ir.expr import GenericConst

LAYOUT_OPS = frozenset({"relax.reshape", "relax.permute_dims", "relax.expand_dims", "relax.squeeze",
                        "relax.flatten"})
INTEGER_DTYPES = frozenset({"int8", "uint8", "int16", "uint16", "int32"})

Bindings = dict[relax.Var, relax.Expr]


class NotLowerableError(Exception):
    """An op cannot be lowered to integers; the message is the reason shown in the rewrite report."""


@dataclass(frozen=True)
class QuantizedConstant:
    """A constant integer tensor with per-element scale and zero point (all three in the op operand's shape)."""

    values: np.ndarray  # int64
    scale: np.ndarray  # float32
    zero_point: np.ndarray  # int64
    dtype: str  # the stored integer type (int8, uint8, int32, ...)

    def centred(self) -> np.ndarray:
        """``q - zero_point`` as int64: the integer that multiplies the scale."""
        return self.values - self.zero_point


@dataclass(frozen=True)
class QuantizedActivation:
    """A runtime integer tensor dequantized per tensor, plus the layout ops between the dequantize and the op."""

    source: relax.Expr  # the integer tensor the dequantize read
    layout: tuple[relax.Call, ...]  # to re-apply to ``source``, innermost first
    dtype: str
    scale: float  # float32 value, kept as a Python float
    zero_point: int


def op_name(expr: relax.Expr) -> str | None:
    """``relax.nn.conv2d`` for a call of a registered op, None for anything else (call_tir, vars, constants)."""
    if isinstance(expr, relax.Call) and hasattr(expr.op, "name"):
        return str(expr.op.name)
    return None


def resolve(expr: relax.Expr, bindings: Bindings) -> relax.Expr:
    """The value a variable is bound to (the expression itself for parameters, constants and non-vars)."""
    while isinstance(expr, relax.Var) and expr in bindings:
        expr = bindings[expr]
    return expr


def static_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    """The tensor shape of ``expr`` as ints, or None when unknown or symbolic."""
    shape = getattr(getattr(expr, "ty", None), "shape", None)
    if shape is None:
        return None
    try:
        return tuple(int(d) for d in shape)
    except (TypeError, ValueError):  # a symbolic dimension
        return None


def tensor_dtype(expr: relax.Expr) -> str | None:
    dtype = getattr(getattr(expr, "ty", None), "dtype", None)
    return None if dtype is None else str(dtype)


def constant_array(expr: relax.Expr, bindings: Bindings) -> np.ndarray | None:
    """The numpy value of a (bound) tensor constant, else None."""
    expr = resolve(expr, bindings)
    if isinstance(expr, GenericConst):
        return expr.value.numpy()
    return None


def evaluate_constant(expr: relax.Expr, bindings: Bindings) -> np.ndarray | None:
    """A constant, or the ``where(isnan(c), ±inf, c)`` the ONNX importer wraps around Clip bounds, evaluated."""
    expr = resolve(expr, bindings)
    name = op_name(expr)
    if name == "relax.isnan":
        arg = evaluate_constant(expr.args[0], bindings)
        return None if arg is None else np.isnan(arg)
    if name == "relax.where":
        args = [evaluate_constant(a, bindings) for a in expr.args]
        return None if any(a is None for a in args) else np.where(*args)
    return constant_array(expr, bindings)


def channel_vector(array: np.ndarray, axis: int) -> np.ndarray | None:
    """One value per index of ``axis`` when ``array`` is constant along all other axes, else None."""
    moved = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    if moved.shape[1] and not np.all(moved == moved[:, :1]):
        return None
    return moved[:, 0].copy()


def _broadcast_along(param: np.ndarray, axis: int, shape: tuple[int, ...]) -> np.ndarray:
    """A per-tensor or per-``axis`` dequantize parameter expanded to the full tensor shape."""
    if param.size == 1:
        return np.broadcast_to(param.reshape(()), shape)
    view = [1] * len(shape)
    view[axis % len(shape)] = param.size
    return np.broadcast_to(param.reshape(view), shape)


def _apply_layout(array: np.ndarray, call: relax.Call) -> np.ndarray:
    """numpy equivalent of one layout op (its output shape comes from the call's own type)."""
    if op_name(call) == "relax.permute_dims":
        axes = call.attrs.axes
        return np.transpose(array, None if axes is None else [int(a) for a in axes])
    shape = static_shape(call)
    assert shape is not None  # checked by the caller
    return array.reshape(shape)


def trace_operand(expr: relax.Expr, bindings: Bindings) -> QuantizedConstant | QuantizedActivation | str:
    """Follow ``expr`` back through layout ops to a dequantize; return what it dequantizes, or why it cannot."""
    layout: list[relax.Call] = []
    value = resolve(expr, bindings)
    while op_name(value) in LAYOUT_OPS:
        if static_shape(value) is None:
            return "a layout op with a symbolic shape sits between the dequantize and the op"
        layout.append(value)
        value = resolve(value.args[0], bindings)
    if op_name(value) != "relax.dequantize":
        if isinstance(value, GenericConst):
            return "a float constant, not dequantized (not quantized)"
        if not isinstance(value, relax.Call):
            return "a float model input, not dequantized"
        return f"float, computed by {(op_name(value) or 'call_tir').removeprefix('relax.')}, not dequantized"
    data, scale_expr, zp_expr = value.args[:3]
    scale, zero_point = constant_array(scale_expr, bindings), constant_array(zp_expr, bindings)
    if scale is None or zero_point is None:
        return "the dequantize scale or zero point is not a constant"
    dtype = tensor_dtype(data)
    if dtype not in INTEGER_DTYPES:
        return f"the dequantized tensor has type {dtype}, not an integer type"
    layout.reverse()  # innermost (closest to the dequantize) first
    values = constant_array(data, bindings)
    if values is not None:
        shape, axis = values.shape, int(value.attrs.axis)
        full = [values.astype(np.int64), _broadcast_along(scale.astype(np.float32), axis, shape),
                _broadcast_along(zero_point.astype(np.int64), axis, shape)]
        for call in layout:
            full = [_apply_layout(a, call) for a in full]
        return QuantizedConstant(full[0], np.ascontiguousarray(full[1]), np.ascontiguousarray(full[2]), dtype)
    if scale.size != 1 or zero_point.size != 1:
        return "the activation is quantized per channel (only per-tensor activations are lowered)"
    return QuantizedActivation(data, tuple(layout), dtype, float(scale.reshape(())), int(zero_point.reshape(())))


def trace_constant(expr: relax.Expr, bindings: Bindings) -> QuantizedConstant | np.ndarray | None:
    """A constant operand: a quantized constant, a float constant (through layout ops), or None if not constant."""
    traced = trace_operand(expr, bindings)
    if isinstance(traced, QuantizedConstant):
        return traced
    layout: list[relax.Call] = []
    value = resolve(expr, bindings)
    while op_name(value) in LAYOUT_OPS and static_shape(value) is not None:
        layout.append(value)
        value = resolve(value.args[0], bindings)
    array = constant_array(value, bindings)
    if array is None:
        return None
    for call in reversed(layout):
        array = _apply_layout(array, call)
    return array
