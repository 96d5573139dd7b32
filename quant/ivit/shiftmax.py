"""Shiftmax (I-ViT ``IntSoftmax``): softmax over the last dim from shift-exp and one integer division per row.

``x ← x − max(x)``; ``e = shift_exp(x)``; ``S = min(Σe, 2^31 − 1)``; ``factor = ⌊(2^31 − 1) / S⌋``;
``out = ⌊e · factor / 2^(32 − b)⌋`` with output scale 1 / 2^(b−1). Since e ≤ S, e · factor ≤ 2^31 − 1 and the
output lies in [0, 2^(b−1) − 1]: 8-bit Shiftmax fits int8 (values 0..127, scale 1/128).

Defaults: n = 15 as the official PyTorch module (the TVM benchmark uses 16); b = 8 as the TVM benchmark, whose
probabilities feed an int8 ``attn @ v`` (the PyTorch training code uses 16).
"""

from __future__ import annotations

import torch

from ..errors import QuantConfigError
from ._int import INT32_MAX, as_int64, floor_div
from .shift_exp import check_exp_params, shift_exp

SOFTMAX_N = 15
SOFTMAX_BITS = 8


def output_dtype(bits: int) -> torch.dtype:
    """The narrowest signed dtype holding [0, 2^(bits−1) − 1]."""
    return torch.int8 if bits <= 8 else torch.int16 if bits <= 16 else torch.int32


def check_output_bits(bits: int, what: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise QuantConfigError(f"{what}: output bits must be an int in 2..16, got {bits!r}")


def shiftmax(x: torch.Tensor, x0: int, n: int = SOFTMAX_N, output_bits: int = SOFTMAX_BITS) -> torch.Tensor:
    """Integer softmax of integer logits ``x`` (any scale s, ``x0 = exp_x0(s)``); output scale 1 / 2^(b−1)."""
    check_exp_params(x0, n, "Shiftmax")
    check_output_bits(output_bits, "Shiftmax")
    x = as_int64(x, "Shiftmax input")
    e = shift_exp(x - x.amax(dim=-1, keepdim=True), x0, n)
    total = e.sum(dim=-1, keepdim=True).clamp(max=INT32_MAX)
    factor = floor_div(torch.full_like(total, INT32_MAX), total)
    return ((e * factor) >> (32 - output_bits)).to(output_dtype(output_bits))


FIT_NS = (8, 10, 12, 15)
FIT_STEPS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def logit_scale(x0: int) -> float:
    """A logit scale s with ⌊−1/s⌋ = x0 that float rounding cannot move: 1 / (|x0| − 0.5)."""
    return 1.0 / (-x0 - 0.5)


def fit_shiftmax(logits: torch.Tensor, output_bits: int = 16, ns: tuple[int, ...] = FIT_NS,
                 steps: tuple[int, ...] = FIT_STEPS) -> tuple[int, int]:
    """(x0, n) for Shiftmax on float ``logits`` rows (…, N): the pair whose output is closest to softmax in squared
    error, among those whose row sum cannot clamp (N · |x0| · 2^n ≤ 2^31 − 1). Conversion-time helper.

    Why a search: the kernel's 31 bits are shared by the row sum (N · |x0| · 2^n) and the precision of
    ⌊(2^31 − 1) / S⌋. I-ViT's n = 15 with the finest logit grid leaves a factor of 1 or 2 (≈ 11 dB against
    softmax on Segmenter-Tiny's logits); n = 8 with |x0| = 128…512 measured 33-37 dB there."""
    rows = logits.detach().double().reshape(-1, logits.shape[-1])
    tokens = rows.shape[-1]
    reference = torch.softmax(rows, dim=-1)
    best: tuple[float, int, int] | None = None
    for n in ns:
        for step in steps:
            if tokens * step << n > INT32_MAX:
                continue
            x0 = -step
            q = torch.round(rows / logit_scale(x0)).to(torch.int64)
            approx = shiftmax(q, x0, n, output_bits).double() / 2 ** (output_bits - 1)
            err = float(((approx - reference) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, x0, n)
    if best is None:
        raise QuantConfigError(f"no Shiftmax parameters keep the row sum of {tokens} tokens below 2^31",
                               hint="use a smaller input size")
    return best[1], best[2]
