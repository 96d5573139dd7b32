"""Dyadic requantization (I-ViT ``fixedpoint_mul``): rescale integers by m / 2^k with an integer multiply and a
rounding shift, so a scale change s_in → s_out needs no float at run time.

Conversion time (float64, once): ``m, e = frexp(s_in / s_out)``, ``m_int = round_half_up(m · 2^31)``,
``k = 31 − e`` (the official ``batch_frexp``). Run time: ``out = clamp(round(z · m_int / 2^k))``, rounding half
to even as the official ``torch.round`` (or half up, the cheap form on hardware). The official code multiplies in
float64, which is exact only while |z · m_int| < 2^53; here the product is an exact int64 (|z| < 2^32).
A residual add requantizes both branches to the output scale and adds them before the clamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import torch

from ..errors import QuantConfigError
from ._int import MAX_SHIFT, as_int64, round_shift

MANTISSA_BITS = 31
ROUNDINGS = ("half_even", "half_up")


@dataclass(frozen=True)
class Dyadic:
    """Integer multipliers ``m`` (< 2^31) and shifts ``k`` (0..62), one per channel (last dim) or one per tensor."""

    m: torch.Tensor
    k: torch.Tensor

    def value(self) -> torch.Tensor:
        """m / 2^k in float64, for reports and tests (never used by the kernels)."""
        return self.m.double() / torch.pow(2.0, self.k.double())


def dyadic_from_ratio(ratio: torch.Tensor | float) -> Dyadic:
    """m / 2^k closest to ``ratio`` (> 0) with a 31-bit mantissa, as the official ``batch_frexp`` computes it."""
    values = torch.as_tensor(ratio, dtype=torch.float64).reshape(-1)
    ms, ks = [], []
    for r in values.tolist():
        if not (math.isfinite(r) and r > 0):
            raise QuantConfigError(f"requantization needs a positive finite scale ratio, got {r!r}")
        mantissa, exponent = math.frexp(r)  # r = mantissa · 2^exponent, mantissa in [0.5, 1)
        m = int((Decimal(mantissa) * (1 << MANTISSA_BITS)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        k = MANTISSA_BITS - exponent
        if m == 1 << MANTISSA_BITS:  # mantissa rounded up to 1.0: same value, one bit less
            m, k = m >> 1, k - 1
        if not 0 <= k <= MAX_SHIFT:
            raise QuantConfigError(f"scale ratio {r:.3e} needs a shift of {k}, outside 0..{MAX_SHIFT}",
                                   hint="the input and output scales are too far apart for a 31-bit dyadic")
        ms.append(m)
        ks.append(k)
    shape = torch.as_tensor(ratio).shape
    as_tensor = lambda v: torch.tensor(v, dtype=torch.int64).reshape(shape)  # noqa: E731
    return Dyadic(as_tensor(ms), as_tensor(ks))


def qrange(bits: int) -> tuple[int, int]:
    """Signed ``bits``-bit range, full (−2^(b−1) … 2^(b−1) − 1) as the official clamp."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
        raise QuantConfigError(f"requantization bits must be an int in 2..32, got {bits!r}")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def storage_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16 if bits <= 16 else torch.int32


def _scaled(z: torch.Tensor, d: Dyadic, rounding: str, name: str) -> torch.Tensor:
    z = as_int64(z, name)
    if z.numel() and int(z.abs().max()) >= 2**32:  # with m < 2^31 the product stays below 2^63
        raise OverflowError(f"{name} must be below 2^32 in magnitude, got max |z| = {int(z.abs().max())}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return round_shift(z * d.m, d.k, rounding)


def requantize(z: torch.Tensor, d: Dyadic, bits: int = 8, rounding: str = "half_even") -> torch.Tensor:
    """``clamp(round(z · m / 2^k))`` to signed ``bits`` (int8 / int16 / int32 storage)."""
    lo, hi = qrange(bits)
    return _scaled(z, d, rounding, "requantize input").clamp(lo, hi).to(storage_dtype(bits))


def requantize_add(a: torch.Tensor, da: Dyadic, b: torch.Tensor, db: Dyadic, bits: int = 16,
                   rounding: str = "half_even") -> torch.Tensor:
    """Residual add at a common output scale: ``clamp(round(a · ma / 2^ka) + round(b · mb / 2^kb))``."""
    lo, hi = qrange(bits)
    total = _scaled(a, da, rounding, "residual input a") + _scaled(b, db, rounding, "residual input b")
    return total.clamp(lo, hi).to(storage_dtype(bits))
