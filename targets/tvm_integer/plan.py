"""Decide for every float conv2d/matmul of a QDQ Relax function how it becomes integer code, or why it stays float.

A site is one ``conv2d`` or ``matmul`` call. It is lowered when its inputs are dequantized integers (``qparams``):
a per-tensor activation times per-channel constant weights (conv, Linear/Gemm), or two per-tensor activations
(attention matmuls); ``operands`` picks the integer types. The int32 accumulator (plus a constant per-channel bias
add, if one follows) then serves each consumer of the op's result (``consumers``): a **requantize** in fixed point
for every consumer that reaches a quantize through relu/clip and layout ops only, and the accumulator
**dequantized** to float for anything else (a residual add, a float op, the model output), from where the graph
continues in float as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from .consumers import Users, bias_vector, find_consumers, make_site_requantizer
from .fixed_point import Requantizer
from .operands import INT32_LIMIT, Operand, activation_operands, weight_operands
from .qparams import (
    Bindings,
    NotLowerableError,
    QuantizedActivation,
    QuantizedConstant,
    op_name,
    static_shape,
    tensor_dtype,
    trace_operand,
)

SITE_OPS = {"relax.nn.conv2d": "conv2d", "relax.matmul": "matmul"}


@dataclass(frozen=True)
class Dequantize:
    """Epilogue without an output quantizer: ``float32(acc + bias) · scale`` per channel."""

    bias: np.ndarray | None  # int32 per channel (zero-point correction included), None if all zero
    scale: np.ndarray  # float32 per channel: s_in · s_w


@dataclass(frozen=True)
class SiteOutput:
    """One value the integer site produces, replacing the binding of ``var``."""

    var: relax.Var
    epilogue: Requantizer | Dequantize
    layout: tuple[relax.Call, ...] = ()  # layout ops between the op and its quantize, re-applied after the epilogue


@dataclass(frozen=True)
class IntegerSite:
    """A conv2d/matmul that becomes integer code: the accumulator at ``op_var``, then one epilogue per output."""

    op: str
    index: int
    where: str
    call: relax.Call
    op_var: relax.Var
    lhs: Operand
    rhs: Operand
    pad_with_zero_point: bool  # conv: pad explicitly with the zero point, then convolve without padding
    channel_axis: int
    outputs: tuple[SiteOutput, ...]
    arithmetic: str
    note: str | None  # why some consumer gets a float value (None when every consumer gets integers)

    @property
    def requantized_only(self) -> bool:
        return all(isinstance(o.epilogue, Requantizer) for o in self.outputs)


@dataclass(frozen=True)
class FloatSite:
    """A conv2d/matmul left in float, and why."""

    op: str
    index: int
    where: str
    reason: str


# ------------------------------------------------------------------------------------------------ graph facts


def _bindings_in_order(func: relax.Function) -> list[relax.VarBinding]:
    return [b for block in func.body.blocks for b in block.bindings if isinstance(b, relax.VarBinding)]


def _users(func: relax.Function) -> Users:
    """Every var's consuming bindings; ``None`` stands for the function's return value."""
    users: Users = {}
    for binding in _bindings_in_order(func):
        for var in relax.analysis.free_vars(binding.value):
            users.setdefault(var, []).append(binding)
    for block in func.body.blocks:
        for binding in block.bindings:
            if not isinstance(binding, relax.VarBinding):  # match_cast and friends: count as opaque users
                for var in relax.analysis.free_vars(binding.value):
                    users.setdefault(var, []).append(None)
    for var in relax.analysis.free_vars(func.body.body):
        users.setdefault(var, []).append(None)
    return users


def _describe(call: relax.Call, op: str) -> str:
    """Shapes of a site for the report, e.g. ``conv2d 1x16x32x32 * 32x1x3x3 (groups 16) -> 1x32x16x16``."""
    shapes = ["x".join(map(str, static_shape(a) or ("?",))) for a in call.args[:2]]
    out = "x".join(map(str, static_shape(call) or ("?",)))
    groups = f" (groups {int(call.attrs.groups)})" if op == "conv2d" and int(call.attrs.groups) > 1 else ""
    return f"{op} {shapes[0]} * {shapes[1]}{groups} -> {out}"


# ------------------------------------------------------------------------------------------------ planning


def plan_function(func: relax.Function) -> list[IntegerSite | FloatSite]:
    """One decision per conv2d/matmul of ``func``, in graph order."""
    bindings: Bindings = dict(relax.analysis.get_var2val(func))
    users = _users(func)
    counts: dict[str, int] = {}
    sites: list[IntegerSite | FloatSite] = []
    for binding in _bindings_in_order(func):
        op = SITE_OPS.get(op_name(binding.value) or "")
        if op is None:
            continue
        index = counts[op] = counts.get(op, -1) + 1
        where = _describe(binding.value, op)
        try:
            sites.append(_plan_site(binding, op, index, where, bindings, users))
        except NotLowerableError as why:
            sites.append(FloatSite(op, index, where, str(why)))
    return sites


def _plan_site(binding: relax.VarBinding, op: str, index: int, where: str, bindings: Bindings,
               users: Users) -> IntegerSite:
    call: relax.Call = binding.value
    out_shape = static_shape(call)
    if out_shape is None:
        raise NotLowerableError("the output shape is symbolic")
    if tensor_dtype(call) != "float32":
        raise NotLowerableError(f"the op computes in {tensor_dtype(call)}, not float32")
    if op == "conv2d":
        attrs = call.attrs
        if (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout)) != ("NCHW", "OIHW", "NCHW"):
            raise NotLowerableError(f"layout {attrs.data_layout}/{attrs.kernel_layout} (only NCHW/OIHW is lowered)")
        channel_axis = 1
    else:
        if len(out_shape) < 2 or any(len(static_shape(a) or ()) < 2 for a in call.args[:2]):
            raise NotLowerableError("a matmul operand is a vector (only matrices and batches are lowered)")
        channel_axis = len(out_shape) - 1
    lhs, rhs = (trace_operand(a, bindings) for a in call.args[:2])
    for role, traced in (("data", lhs), ("weight", rhs)):
        if isinstance(traced, str):
            raise NotLowerableError(f"{role}: {traced}")
    if not isinstance(lhs, QuantizedActivation):
        raise NotLowerableError("the first operand is a constant (only activation x weight is lowered)")
    if isinstance(rhs, QuantizedConstant):
        plan = weight_operands(op, call, lhs, rhs)
    elif op == "matmul":
        plan = activation_operands(lhs, rhs, out_shape[channel_axis], static_shape(call.args[0])[-1])
    else:
        raise NotLowerableError("the convolution weights are not constant")
    consumers = find_consumers(binding.var, out_shape, channel_axis, bindings, users)
    bias = plan.correction + bias_vector(consumers.bias, plan.in_scale)
    if np.abs(bias).max(initial=0) > INT32_LIMIT:
        raise NotLowerableError("the integer bias does not fit int32")
    outputs: list[SiteOutput] = []
    float_reason = consumers.float_reason
    for consumer in consumers.quantized:
        try:
            requantizer = make_site_requantizer(consumer.quantize, consumer.low, consumer.high, plan.in_scale, bias,
                                                plan.acc_bound + np.abs(bias), bindings)
        except NotLowerableError as why:  # that quantize stays float, reading the dequantized accumulator
            float_reason = float_reason or f"no requantize: {why}"
        else:
            outputs.append(SiteOutput(consumer.var, requantizer, consumer.layout))
    if float_reason is not None:
        dequantize = Dequantize(bias.astype(np.int32) if np.any(bias) else None, plan.in_scale.astype(np.float32))
        outputs.insert(0, SiteOutput(consumers.end, dequantize))
    return IntegerSite(op, index, where, call, binding.var, plan.lhs, plan.rhs, plan.pad, channel_axis,
                       tuple(outputs), plan.arithmetic, float_reason)


# ------------------------------------------------------------------------------------------------ after the op


