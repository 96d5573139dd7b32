"""What follows a conv2d/matmul: a constant bias add, then per consumer either relu/clip and layout ops → quantize
(a requantize) or anything else (the float value is needed).

The activation folds into the requantization's clamp bounds exactly: rounding is monotone, so
``round(clip(v, a, b)/s) = clip(round(v/s), round(a/s), round(b/s))``. Several quantizers of one result (one per
consuming layer, as a QDQ exporter that quantizes layer inputs writes them) each get their own requantization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from tvm import relax

from .fixed_point import QUANT_RANGE, Requantizer, make_requantizer
from .qparams import (
    LAYOUT_OPS,
    Bindings,
    NotLowerableError,
    QuantizedConstant,
    evaluate_constant,
    op_name,
    static_shape,
    trace_constant,
)

Users = dict[relax.Var, list[relax.VarBinding | None]]  # None stands for the function's return value
BIAS_SCALE_RTOL = 1e-5  # a quantized bias whose scale is s_in·s_w up to float32 rounding is used as is


@dataclass(frozen=True)
class QuantizedConsumer:
    """A consumer that reaches a quantize: its var and call, folded clamp bounds, layout ops on the way."""

    var: relax.Var
    quantize: relax.Call
    low: float
    high: float
    layout: tuple[relax.Call, ...]  # to apply after the requantization, in order


@dataclass
class Consumers:
    """What follows the op: ``end`` (the op, or its constant bias add) and who reads it.

    ``quantized`` lists the consumers that reach a quantize through relu/clip and layout ops only; ``float_reason``
    says why the float value of ``end`` is still needed (None if it is not).
    """

    end: relax.Var
    bias: QuantizedConstant | np.ndarray | None = None
    quantized: list[QuantizedConsumer] = field(default_factory=list)
    float_reason: str | None = None


def _sole_user(var: relax.Var, users: Users) -> tuple[relax.VarBinding | None, str | None]:
    """The one binding consuming ``var``, or None and the reason there is not exactly one."""
    found = users.get(var, [])
    if len(found) == 1 and found[0] is not None:
        return found[0], None
    if None in found:
        return None, "its result is a model output"
    return None, f"its result has {len(found)} consumers"


def _channel_values(value: QuantizedConstant | np.ndarray | None, out_shape: tuple[int, ...],
                    channel_axis: int) -> bool:
    """Whether a constant broadcasts onto the output varying along the channel axis only."""
    if value is None:
        return False
    shape = (value.values if isinstance(value, QuantizedConstant) else value).shape
    if len(shape) > len(out_shape):
        return False
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return all(n == 1 or (axis == channel_axis and n == out_shape[axis]) for axis, n in enumerate(shape))


def _clamp_bounds(value: relax.Expr, bindings: Bindings) -> tuple[float, float] | None:
    """(low, high) of relu, clip, or the maximum/minimum pair the ONNX importer emits for Clip; None otherwise."""
    name = op_name(value)
    if name == "relax.nn.relu":
        return 0.0, math.inf
    if name == "relax.clip":
        return float(value.args[1].value), float(value.args[2].value)  # FloatImm/IntImm bounds
    if name == "relax.call_tir" and isinstance(value.args[0], relax.GlobalVar):
        kernel = str(value.args[0].name_hint)
        args = value.args[1].fields if isinstance(value.args[1], relax.Tuple) else []
        bound = evaluate_constant(args[1], bindings) if len(args) == 2 else None
        if bound is None or bound.size != 1:
            return None
        if kernel.startswith("maximum"):  # TOPI's elementwise maximum, named by the importer's emit_te
            return float(bound.reshape(())), math.inf
        if kernel.startswith("minimum"):
            return -math.inf, float(bound.reshape(()))
    return None


def _to_quantize(var: relax.Var, bindings: Bindings, users: Users) -> QuantizedConsumer | str:
    """From a consumer binding's var, follow relu/clip and layout ops (single consumers) to a quantize; or why not.

    Layout ops only move elements, so a per-tensor quantize after them equals the layout ops after the quantize.
    """
    low, high, layout = -math.inf, math.inf, []
    while True:
        value = bindings[var]
        name = op_name(value)
        if name == "relax.quantize":
            return QuantizedConsumer(var, value, low, high, tuple(layout))
        bounds = _clamp_bounds(value, bindings)
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        elif name in LAYOUT_OPS and static_shape(value) is not None:
            layout.append(value)
        else:
            return f"its result feeds {(name or 'call_tir').removeprefix('relax.')}, not a quantize"
        user, why = _sole_user(var, users)
        if user is None:
            return f"no quantize after its {'activation' if bounds is not None else name} ({why})"
        var = user.var


def find_consumers(var: relax.Var, out_shape: tuple[int, ...], channel_axis: int, bindings: Bindings,
                   users: Users) -> Consumers:
    """The op's (or its bias add's) consumers, sorted into quantized ones and those that need the float value."""
    found = Consumers(end=var)
    user, _ = _sole_user(var, users)
    if user is not None and op_name(user.value) == "relax.add":
        other = user.value.args[1] if user.value.args[0].same_as(var) else user.value.args[0]
        constant = trace_constant(other, bindings)
        if _channel_values(constant, out_shape, channel_axis):
            found.bias, found.end = constant, user.var
    reasons = []
    for consumer in users.get(found.end, []):
        path = "its result is a model output" if consumer is None else _to_quantize(consumer.var, bindings, users)
        if isinstance(path, str):
            reasons.append(path)
        else:
            found.quantized.append(path)
    if reasons:
        found.float_reason = "; ".join(dict.fromkeys(reasons))
    return found


def bias_vector(bias: QuantizedConstant | np.ndarray | None, in_scale: np.ndarray) -> np.ndarray:
    """The bias in accumulator steps, per channel (int64): exact for a bias quantized with scale s_in·s_w."""
    if bias is None:
        return np.zeros(in_scale.shape, np.int64)
    if isinstance(bias, QuantizedConstant):
        steps = bias.centred().reshape(-1).astype(np.float64)
        scale = bias.scale.reshape(-1).astype(np.float64)
        if np.allclose(scale, in_scale, rtol=BIAS_SCALE_RTOL, atol=0):
            return np.broadcast_to(bias.centred().reshape(-1), in_scale.shape).astype(np.int64)
        real = steps * scale
    else:
        real = bias.reshape(-1).astype(np.float64)
    return np.round(np.broadcast_to(real, in_scale.shape) / in_scale).astype(np.int64)


def make_site_requantizer(quantize: relax.Call, low: float, high: float, in_scale: np.ndarray,
                          bias: np.ndarray, acc_bound: np.ndarray, bindings: Bindings) -> Requantizer:
    """Fixed-point constants for one quantize consumer (per-tensor output quantizers only)."""
    scale, zero_point = (evaluate_constant(a, bindings) for a in quantize.args[1:3])
    dtype = str(quantize.attrs.out_dtype)
    if scale is None or zero_point is None or scale.size != 1 or zero_point.size != 1:
        raise NotLowerableError("the output quantizer is per channel or not constant")
    if dtype not in QUANT_RANGE:
        raise NotLowerableError(f"the output quantizer's type {dtype} is not an integer type")
    s_out, zp_out = np.float32(scale.reshape(())), int(zero_point.reshape(()))
    qmin, qmax = QUANT_RANGE[dtype]
    if low > -math.inf:
        qmin = max(qmin, zp_out + int(np.round(np.float32(low) / s_out)))
    if high < math.inf:
        qmax = min(qmax, zp_out + int(np.round(np.float32(high) / s_out)))
    real = in_scale / np.float64(s_out)
    try:
        return make_requantizer(real, bias, np.full(real.shape, zp_out), qmin, max(qmin, qmax), dtype, acc_bound)
    except ValueError as why:
        raise NotLowerableError(str(why)) from why
