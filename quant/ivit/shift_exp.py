"""I-ViT's shift-exp: e^x for integer x ≤ 0 with shifts, one floor division and a linear 2^f approximation.

With input scale s, ``x0 = ⌊−1/s⌋`` is the integer that stands for −1. The kernel (official ``int_exp_shift``):

1. ``x ← x + (x >> 1) − (x >> 4)``: x · log2(e), with log2(e) ≈ 1.4375;
2. ``x ← max(x, n·x0)``: clip at −n (2^−n is below the output's resolution);
3. ``q = ⌊x / x0⌋``, ``r = x − q·x0`` ∈ (x0, 0]: x·log2(e) = −q + r/|x0|;
4. ``2^(r/|x0|) ≈ 1 + r/(2|x0|)``, i.e. ``r/2 − x0`` in units of 1/|x0|;
5. times 2^(n − q), floored: ``e = ⌊(r/2 − x0) · 2^(n−q)⌋``, in units of s / 2^n.

Step 5 is taken as the official PyTorch code computes it: r/2 is *not* floored before the shift (the TVM
benchmark code floors it, ``(r >> 1) − x0``, and differs by up to 2^(n−q−1) when r is odd). Here it is the exact
integer ``(r − 2·x0) · 2^(n−q−1)`` (or ``(r − 2·x0) >> 1`` when q = n, where r = 0).
"""

from __future__ import annotations

import math

import torch

from ..errors import QuantConfigError
from ._int import INT32_MAX, as_int64, floor_div, saturating_shl


def exp_x0(scale: float) -> int:
    """``⌊−1 / scale⌋``: the integer standing for −1 at this input scale (conversion time, float64)."""
    if not (isinstance(scale, float | int) and math.isfinite(scale) and scale > 0):
        raise QuantConfigError(f"shift-exp needs a positive finite input scale, got {scale!r}")
    return math.floor(-1.0 / float(scale))


def check_exp_params(x0: int, n: int, what: str = "shift-exp") -> None:
    """Refuse parameters whose largest exp value, |x0| · 2^n (at x = 0), would not fit int32."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 30:
        raise QuantConfigError(f"{what}: n must be an int in 0..30, got {n!r}")
    if isinstance(x0, bool) or not isinstance(x0, int) or x0 >= 0:
        raise QuantConfigError(f"{what}: x0 must be a negative int (⌊−1/scale⌋), got {x0!r}")
    if -x0 << n > INT32_MAX:
        raise QuantConfigError(
            f"{what}: |x0| · 2^n = {-x0} · 2^{n} does not fit int32: the input scale is too fine for n={n}",
            hint=f"use n ≤ {max(0, 30 - (-x0).bit_length())} or a coarser input scale")


def shift_exp(x: torch.Tensor, x0: int, n: int, *, saturate: bool = False) -> torch.Tensor:
    """e^(x·s) as integers of scale s / 2^n, for integer ``x`` ≤ 0 (int64 out, ≤ |x0| · 2^n).

    Positive ``x`` (ShiftGELU's e^(−x_max) when a whole row is negative) gives values above |x0| · 2^n; with
    ``saturate`` they are capped at 2^31 − 1, which is what the official code's clamp of the sum makes of them.
    """
    check_exp_params(x0, n)
    x = as_int64(x, "shift_exp input")
    if not saturate and bool((x > 0).any()):
        raise ValueError("shift_exp takes x ≤ 0 (pass saturate=True for ShiftGELU's e^(−x_max))")
    x = x + (x >> 1) - (x >> 4)  # x · 1.4375 ≈ x · log2(e)
    x = torch.clamp(x, min=n * x0)
    q = floor_div(x, x0)
    r = x - q * x0  # (x0, 0]
    twice = r - 2 * x0  # 2 · (r/2 − x0), in (|x0|, 2|x0|]
    shift = n - q - 1  # ≥ −1; −1 only at the clip, where r = 0
    halved = twice >> 1
    if saturate:
        return torch.where(shift < 0, halved, saturating_shl(twice, shift.clamp(min=0), INT32_MAX))
    return torch.where(shift < 0, halved, twice << shift.clamp(min=0))
