"""The elementwise integer kernels around an integer conv2d/matmul, as TE computes (one PrimFunc each).

One kernel per step instead of a chain of Relax ops: ``tvm.compile``'s default CPU pipeline does not fuse, so a
requantization written as astype/multiply/add/right_shift/clip/astype would be six PrimFuncs and six passes over
memory per site; compile time grows with the number of PrimFuncs (TopFormer-T: ~500 of them, 45 s, before this).
Per-channel constants come in as 1-D tensors of length C (or 1) indexed by the output's channel coordinate.
"""

from __future__ import annotations

from tvm import te, tirx


def _at(vector: te.Tensor, channel: tirx.PrimExpr) -> tirx.PrimExpr:
    """``vector[channel]``, or its only element for a per-tensor value."""
    return vector[0] if int(vector.shape[0]) == 1 else vector[channel]


def convert_to_int8(x: te.Tensor) -> te.Tensor:
    """uint8 → int8 by subtracting 128 (exact; the zero point moves by −128 with it)."""
    return te.compute(x.shape, lambda *i: (x(*i).astype("int16") - 128).astype("int8"), name="uint8_to_int8")


def subtract_zero_point(x: te.Tensor, zero_point: int) -> te.Tensor:
    """``int16(x) − zero_point``: the centred integer, for ops whose operands do not fit int8."""
    return te.compute(x.shape, lambda *i: x(*i).astype("int16") - tirx.const(zero_point, "int16"),
                      name="subtract_zero_point")


def requantize(acc: te.Tensor, multiplier: te.Tensor, addend: te.Tensor, shift: te.Tensor, channel_axis: int,
               qmin: int, qmax: int, dtype: str) -> te.Tensor:
    """``clip((int64(acc)·m + C) >> shift, qmin, qmax)`` as ``dtype`` (constants: see ``fixed_point``)."""

    def element(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        c = i[channel_axis]
        value = (acc(*i).astype("int64") * _at(multiplier, c) + _at(addend, c)) >> _at(shift, c)
        return tirx.max(tirx.min(value, tirx.const(qmax, "int64")), tirx.const(qmin, "int64")).astype(dtype)

    return te.compute(acc.shape, element, name="requantize")


def dequantize_accumulator(acc: te.Tensor, bias: te.Tensor, scale: te.Tensor, channel_axis: int) -> te.Tensor:
    """``float32(acc + bias) · scale`` per channel: the float value of the integer result."""

    def element(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        c = i[channel_axis]
        return (acc(*i) + _at(bias, c)).astype("float32") * _at(scale, c)

    return te.compute(acc.shape, element, name="dequantize_accumulator")
