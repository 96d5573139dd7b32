"""Fixed-point requantization: an int32 accumulator scaled to the output quantizer with integer arithmetic only.

The real multiplier per output channel, ``M = s_in·s_w / s_out``, becomes ``m / 2^shift`` with ``m`` in
``[2^30, 2^31)`` (31 significant bits, so the relative error is below 2^-31). The int32 bias ``B`` (zero-point
correction included) and the output zero point fold into one int64 addend,

    (acc + B)·m + 2^(shift-1) + zp·2^shift  =  acc·m + C,

so the lowered code is multiply, add, arithmetic shift right, clip, cast. The shift rounds halves up where the float
reference (ONNX QuantizeLinear) rounds the float product half to even; the two can differ by one step when the
float product lands within float error of a half, which the tests measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MANTISSA_BITS = 31
MAX_SHIFT = 47  # keeps zero point·2^shift far inside int64; see fixed_point_multiplier
_INT64_HEADROOM = float(2**62)

QUANT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535)}


@dataclass(frozen=True)
class Requantizer:
    """Per-channel integer constants of the requantization (vectors of one length: channels, or 1 per tensor)."""

    multiplier: np.ndarray  # int64
    addend: np.ndarray  # int64, bias·m + rounding + zero point·2^shift
    shift: np.ndarray  # int64
    qmin: int
    qmax: int
    dtype: str


def fixed_point_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m, shift)`` with ``real ≈ m / 2^shift``, ``m ≤ 2^31``; raises ValueError for multipliers ≥ 2^30.

    Multipliers below 2^-16 hit the shift cap and keep fewer than 31 significant bits; their absolute error,
    at most 2^-48, moves any int32 accumulator by less than 2^-17 of an output step.
    """
    real = np.asarray(real, dtype=np.float64)
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError("requantization multipliers must be finite and non-negative")
    _, exponent = np.frexp(real)  # real = f·2^e, f in [0.5, 1)
    shift = MANTISSA_BITS - exponent.astype(np.int64)
    if np.any(shift < 1):
        raise ValueError(f"a requantization multiplier of {real.max():.3g} is too large for 31-bit fixed point")
    shift = np.minimum(shift, MAX_SHIFT)
    multiplier = np.round(np.ldexp(real, shift)).astype(np.int64)
    return multiplier, shift


def make_requantizer(real: np.ndarray, bias: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int,
                     dtype: str, acc_bound: np.ndarray) -> Requantizer:
    """Constants for ``clip((acc·m + C) >> shift, qmin, qmax)``; raises ValueError if int64 could overflow.

    ``acc_bound`` is an upper bound on ``|acc|`` per channel (from the weights and the input range).
    """
    multiplier, shift = fixed_point_multiplier(real)
    bias = np.asarray(bias, dtype=np.int64)
    zero_point = np.asarray(zero_point, dtype=np.int64)
    addend = bias * multiplier + (np.int64(1) << (shift - 1)) + (zero_point << shift)
    worst = ((np.asarray(acc_bound, dtype=np.float64) + np.abs(bias)) * multiplier
             + np.ldexp(1.0 + np.abs(zero_point), shift))
    if np.any(worst >= _INT64_HEADROOM):
        raise ValueError("the requantization could overflow int64 (accumulator or bias too large)")
    return Requantizer(multiplier, addend, shift, int(qmin), int(qmax), dtype)


def requantize_reference(acc: np.ndarray, rq: Requantizer, channel_axis: int) -> np.ndarray:
    """numpy model of the lowered requantization, for bit-exact checks of the generated code."""
    view = [1] * acc.ndim
    view[channel_axis] = -1
    m, c, s = (a.reshape(view) for a in (rq.multiplier, rq.addend, rq.shift))
    out = (acc.astype(np.int64) * m + c) >> s
    return np.clip(out, rq.qmin, rq.qmax).astype(rq.dtype)
