"""Exact integer helpers shared by the I-ViT kernels: dtype checks, floor division and rounding shifts.

Everything here takes and returns integer tensors; nothing converts to float. Rounding follows the official
I-ViT code, which rounds with ``torch.round`` (half to even) and floors with ``torch.floor``; the integer forms
below give the same integers without the float32 (2^24) or float64 (2^53) limits.
"""

from __future__ import annotations

import torch

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
MAX_SHIFT = 62  # products and shifts stay inside int64


def as_int64(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as int64, refusing float and bool tensors (an integer kernel must never see a float)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype} (quantize it first)")
    return x.to(torch.int64)


def require_dtype(x: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dtype != dtype:
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a {dtype} tensor, got {got}")
    return x


def floor_div(a: torch.Tensor, b: torch.Tensor | int) -> torch.Tensor:
    """⌊a / b⌋ for integers of any sign (what ``torch.floor(a / b)`` computes when the division is exact)."""
    return torch.div(a, b, rounding_mode="floor")


def round_half_even_div(a: torch.Tensor, d: int) -> torch.Tensor:
    """round(a / d) with ties to even, for a positive integer ``d`` (``torch.round`` of the exact quotient)."""
    q = floor_div(a, d)
    twice_rem = 2 * (a - q * d)  # in [0, 2d)
    up = (twice_rem > d) | ((twice_rem == d) & (q % 2 == 1))
    return q + up.to(q.dtype)


def round_shift(v: torch.Tensor, shift: torch.Tensor | int, rounding: str = "half_even") -> torch.Tensor:
    """round(v / 2^shift) for int64 ``v`` and 0 ≤ shift ≤ 62, ties to even (``torch.round``) or up (add-half)."""
    shift_t = torch.as_tensor(shift, dtype=torch.int64)
    if bool((shift_t < 0).any()) or bool((shift_t > MAX_SHIFT).any()):
        raise ValueError(f"shift must be in 0..{MAX_SHIFT}, got {shift}")
    half = (torch.ones_like(shift_t) << shift_t) >> 1  # 0 when shift == 0: nothing to round
    if rounding == "half_up":
        return (v + half) >> shift_t
    if rounding != "half_even":
        raise ValueError(f"rounding must be 'half_even' or 'half_up', got {rounding!r}")
    q = v >> shift_t  # arithmetic shift: floor
    rem = v - (q << shift_t)  # in [0, 2^shift)
    up = (rem > half) | ((rem == half) & (half > 0) & (q % 2 == 1))
    return q + up.to(q.dtype)


def saturating_shl(v: torch.Tensor, shift: torch.Tensor, limit: int) -> torch.Tensor:
    """min(v · 2^shift, limit) for 0 ≤ v and shift ≥ 0 without overflowing int64 (huge shifts just saturate)."""
    shift = shift.clamp(max=MAX_SHIFT)
    saturated = v > (torch.full_like(shift, limit) >> shift)  # v·2^s > limit ⇔ v > ⌊limit / 2^s⌋ (integers)
    return torch.where(saturated, torch.full_like(v, limit), v << torch.where(saturated, 0, shift))


def to_int32(x: torch.Tensor, what: str) -> torch.Tensor:
    """Narrow to int32, refusing (not wrapping) values outside the int32 range."""
    if x.numel() and (int(x.min()) < INT32_MIN or int(x.max()) > INT32_MAX):
        raise OverflowError(f"{what} leaves the int32 range: [{int(x.min())}, {int(x.max())}]")
    return x.to(torch.int32)
