"""The inputs of an integer conv2d/matmul: which integer types, what conversion, what zero-point correction.

8-bit activations against int8 weights run as int8 × int8 → int32, which is what dot-product instructions take:
uint8 is shifted by −128 (exact), the activation zero point becomes a per-channel bias correction ``−zp·Σw``, and a
convolution pads with the zero point (ONNX pads the float input with 0.0, i.e. the integer input with its zero
point). Weights outside int8 after subtracting their zero point, and activation pairs with zero points (attention),
subtract the zero points in int16 first. Accumulator bounds are checked so int32 cannot overflow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from tvm import relax

from .qparams import NotLowerableError, QuantizedActivation, QuantizedConstant, channel_vector

ACTIVATION_DTYPES = ("int8", "uint8")
INT32_LIMIT = 2**31 - 1


class Convert(enum.Enum):
    """How a dequantized integer operand becomes the integer op's input."""

    AS_IS = "as is"
    U8_TO_S8 = "uint8 - 128 -> int8"
    WIDEN = "int16, zero point subtracted"


@dataclass(frozen=True)
class Operand:
    """One input of the integer op: a runtime activation (with its conversion) or a ready integer constant."""

    activation: QuantizedActivation | None
    constant: np.ndarray | None
    convert: Convert
    zero_point: int  # the zero point after conversion: the convolution's pad value (0 after WIDEN)


@dataclass(frozen=True)
class OperandPlan:
    """Both inputs of the integer op and what the accumulator means."""

    lhs: Operand
    rhs: Operand
    correction: np.ndarray  # int64 per channel, added to the accumulator
    in_scale: np.ndarray  # float64 per channel: the real value of one accumulator step
    acc_bound: np.ndarray  # bound on |acc| per channel
    pad: bool
    arithmetic: str


def weight_operands(op: str, call: relax.Call, x: QuantizedActivation, w: QuantizedConstant) -> OperandPlan:
    """Activation × constant weights (conv2d OIHW, matmul K×N)."""
    weights = w.centred()
    if op == "matmul" and weights.ndim != 2:
        raise NotLowerableError("the constant matmul operand is batched (only K x N weights are lowered)")
    out_axis = 0 if op == "conv2d" else 1
    reduce_axes = tuple(a for a in range(weights.ndim) if a != out_axis)
    scale = channel_vector(w.scale, out_axis)
    if scale is None:
        raise NotLowerableError("the weight scales vary along the reduction axis")
    if x.dtype not in ACTIVATION_DTYPES:
        raise NotLowerableError(f"{x.dtype} activations (only 8-bit activations are lowered)")
    in_scale = np.float64(np.float32(x.scale)) * scale.astype(np.float64)
    magnitude = np.abs(weights).sum(axis=reduce_axes)
    if weights.min() >= -128 and weights.max() <= 127:
        convert = Convert.U8_TO_S8 if x.dtype == "uint8" else Convert.AS_IS
        zero_point = x.zero_point - 128 if x.dtype == "uint8" else x.zero_point
        padding = [int(p) for p in call.attrs.padding] if op == "conv2d" else []
        lhs = Operand(x, None, convert, zero_point)
        rhs = Operand(None, weights.astype(np.int8), Convert.AS_IS, 0)
        correction = -zero_point * weights.sum(axis=reduce_axes)
        arithmetic = f"{x.dtype}{' -> int8' if x.dtype == 'uint8' else ''} x int8 -> int32"
        pad, bound = any(padding) and zero_point != 0, 128 * magnitude
    elif np.abs(weights).max() <= 32767:
        lhs = Operand(x, None, Convert.WIDEN, 0)
        rhs = Operand(None, weights.astype(np.int16), Convert.AS_IS, 0)
        correction = np.zeros(weights.shape[out_axis], np.int64)
        arithmetic = "int16 x int16 (zero points subtracted) -> int32"
        pad, bound = False, 255 * magnitude
    else:
        raise NotLowerableError("the weights do not fit int16 after subtracting their zero point")
    if bound.max() + np.abs(correction).max() > INT32_LIMIT:
        raise NotLowerableError("the int32 accumulator could overflow (reduction too long)")
    return OperandPlan(lhs, rhs, correction.astype(np.int64), in_scale, bound.astype(np.float64), pad, arithmetic)


def activation_operands(a: QuantizedActivation, b: QuantizedActivation, channels: int, depth: int) -> OperandPlan:
    """Activation × activation (attention): int8 when both are symmetric int8, else int16 minus zero points."""
    for t in (a, b):
        if t.dtype not in ACTIVATION_DTYPES:
            raise NotLowerableError(f"{t.dtype} activations (only 8-bit activations are lowered)")
    if a.dtype == b.dtype == "int8" and a.zero_point == b.zero_point == 0:
        convert, arithmetic, step = Convert.AS_IS, "int8 x int8 -> int32", 128 * 128
    else:
        convert, arithmetic, step = Convert.WIDEN, "int16 x int16 (zero points subtracted) -> int32", 255 * 255
    if depth * step > INT32_LIMIT:
        raise NotLowerableError("the int32 accumulator could overflow (reduction too long)")
    in_scale = np.full(channels, np.float64(np.float32(a.scale)) * np.float64(np.float32(b.scale)))
    return OperandPlan(Operand(a, None, convert, 0), Operand(b, None, convert, 0), np.zeros(channels, np.int64),
                        in_scale, np.full(channels, float(depth * step)), False, arithmetic)
