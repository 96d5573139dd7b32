"""The I-ViT integer algorithms as the official code runs them: on integer-valued *float* tensors.

An independent transcription of ``zkkli/I-ViT`` ``quant_modules.py`` / ``quant_utils.py`` (@380ba99) numerics
(``IntSoftmax``, ``IntGELU``, ``IntLayerNorm``, ``fixedpoint_mul``), written for the tests: with ``dtype=float64``
every intermediate below 2^53 is exact, so it must agree bit for bit with our integer kernels; with ``float32``
(what the official modules compute in) it drifts once intermediates pass 2^24.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import torch

LIMIT = 2**31 - 1


def shift_exp(x: torch.Tensor, scale: float, n: int, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(dtype)
    x = x + torch.floor(x / 2) - torch.floor(x / 2**4)
    x0 = torch.floor(torch.tensor(-1.0, dtype=dtype) / torch.tensor(scale, dtype=dtype))
    x = torch.max(x, n * x0)
    q = torch.floor(x / x0)
    r = x - x0 * q
    e = r / 2 - x0
    return torch.clamp(torch.floor(e * torch.pow(torch.tensor(2.0, dtype=dtype), n - q)), min=0)


def shiftmax(x: torch.Tensor, scale: float, n: int, bits: int, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(dtype)
    e = shift_exp(x - x.max(dim=-1, keepdim=True).values, scale, n, dtype)
    total = e.sum(dim=-1, keepdim=True).clamp(max=LIMIT)
    factor = torch.floor(torch.tensor(LIMIT, dtype=dtype) / total)
    return torch.floor(e * factor / 2 ** (31 - bits + 1))


def shiftgelu(x: torch.Tensor, scale: float, n: int, bits: int, dtype: torch.dtype,
              lam: float = 1.0) -> torch.Tensor:
    x = x.to(dtype)
    scale_sig = float(torch.tensor(scale, dtype=dtype) * 1.702 * lam)
    x_max = x.max(dim=-1, keepdim=True).values
    e1 = shift_exp(x - x_max, scale_sig, n, dtype)
    e2 = shift_exp(-x_max, scale_sig, n, dtype)
    total = (e1 + e2).clamp(max=LIMIT)
    factor = torch.floor(torch.tensor(LIMIT, dtype=dtype) / total)
    sigmoid = torch.floor(e1 * factor / 2 ** (31 - bits + 1))
    return x * sigmoid


def layernorm(x: torch.Tensor, dtype: torch.dtype, bias_int: torch.Tensor | None = None) -> torch.Tensor:
    x = x.to(dtype)
    y = x - torch.round(x.mean(dim=-1, keepdim=True))
    var = (y**2).sum(dim=-1, keepdim=True)
    k = torch.full_like(var, 2.0**16)
    for _ in range(10):
        k = torch.floor((k + torch.floor(var / k)) / 2)
    factor = torch.floor(torch.tensor(LIMIT, dtype=dtype) / k)
    out = torch.floor(y * factor / 2)
    return out if bias_int is None else out + bias_int.to(dtype)


def frexp_dyadic(ratio: float) -> tuple[int, int]:
    """The official ``batch_frexp``: (round_half_up(mantissa · 2^31), 31 − exponent)."""
    mantissa, exponent = math.frexp(ratio)
    m = int(Decimal(mantissa * 2**31).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return m, 31 - exponent


def fixedpoint_mul(z: torch.Tensor, ratio: float, bits: int) -> torch.Tensor:
    """The official requantization: float64 product, ``torch.round`` (ties to even), full signed clamp."""
    m, k = frexp_dyadic(ratio)
    out = torch.round(z.double() * float(m) / 2.0**k)
    return out.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
