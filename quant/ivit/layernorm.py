"""I-LayerNorm (I-ViT ``IntLayerNorm``): LayerNorm over the last dim with an integer Newton square root.

``mean = round(Σx / D)`` (ties to even, as ``torch.round``); ``y = x − mean``; ``var = Σy²`` (a sum, not a mean);
``std = isqrt_newton(var)``; ``factor = ⌊(2^31 − 1) / std⌋``; ``out = ⌊y · factor / 2⌋ + bias_int``.
The output scale is √D / 2^30 per tensor (Σ-based std = √D · σ), times γ per channel: γ is not applied here but
folded into the next requantization, and β enters as ``bias_int = ⌊(β/γ) / (√D / 2^30)⌋``.

The square root starts at 2^16 and runs 10 iterations, as the official code: it reaches ⌊√var⌋ (or one above,
next to a perfect square) for var in [2^16, 2^44), the range of Σy² for the 16-bit residual stream it normalises,
but not for tiny or huge variances (var = 14 ends at 64, not 3). The integer Newton step never goes below
⌊√var⌋, so the output never exceeds ~2^31 in magnitude before the bias.
"""

from __future__ import annotations

import math

import torch

from ..errors import QuantConfigError
from ._int import INT32_MAX, as_int64, floor_div, round_half_even_div

NEWTON_INIT = 2**16
NEWTON_ITERATIONS = 10
OUTPUT_SHIFT = 30


def isqrt_newton(var: torch.Tensor, iterations: int = NEWTON_ITERATIONS, init: int = NEWTON_INIT) -> torch.Tensor:
    """I-ViT's integer square root: ``k ← ⌊(k + ⌊var / k⌋) / 2⌋`` from ``k = init``, a fixed number of times."""
    var = as_int64(var, "isqrt input")
    if bool((var < 0).any()):
        raise ValueError("isqrt_newton takes var ≥ 0")
    k = torch.full_like(var, init)
    for _ in range(iterations):
        k = (k + floor_div(var, k)) >> 1  # k ≥ init / 2^iterations > 0, so no division by zero
    return k


def layernorm_output_scale(dim: int) -> float:
    """√D / 2^30: the scale of ``int_layernorm``'s output before γ (conversion time)."""
    return math.sqrt(dim) / 2**OUTPUT_SHIFT


def layernorm_bias_int(beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``⌊(β/γ) / (√D / 2^30)⌋`` as int64 (conversion time, float64); γ must have no zeros."""
    beta, gamma = beta.detach().double(), gamma.detach().double()
    if bool((gamma == 0).any()):
        raise QuantConfigError("I-LayerNorm folds β/γ into an integer bias, but a LayerNorm weight γ is zero")
    return torch.floor(beta / gamma / layernorm_output_scale(beta.numel())).to(torch.int64)


def int_layernorm(x: torch.Tensor, bias_int: torch.Tensor | None = None, iterations: int = NEWTON_ITERATIONS,
                  init: int = NEWTON_INIT) -> torch.Tensor:
    """Normalise integer ``x`` over its last dim (any input scale): int64 out, scale √D / 2^30 (× γ per channel)."""
    x = as_int64(x, "I-LayerNorm input")
    dim = x.shape[-1]
    mean = round_half_even_div(x.sum(dim=-1, keepdim=True), dim)
    y = x - mean
    if y.numel() and dim * int(y.abs().max()) ** 2 >= 2**62:
        raise OverflowError(f"I-LayerNorm input too large for an int64 Σy²: max |x − mean| = {int(y.abs().max())}")
    std = isqrt_newton((y * y).sum(dim=-1, keepdim=True), iterations, init)
    factor = floor_div(torch.full_like(std, INT32_MAX), std)
    out = (y * factor) >> 1
    if bias_int is not None:
        out = out + as_int64(bias_int, "I-LayerNorm bias")
    return out
