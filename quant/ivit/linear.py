"""int8 × int8 products with int32 accumulation: linear layers, the patch-embedding conv, activation matmuls.

Operands must be ``torch.int8``; products are summed in int32 (torch's integer matmul), which is exact because
K · 128 · 128 < 2^31 for every K below 131072, checked up front. The int32 bias (scale s_w · s_x) is added
with an overflow check instead of wrapping.
"""

from __future__ import annotations

import torch

from ._int import as_int64, require_dtype, to_int32

MAX_K = (2**31 - 1) // (128 * 128)  # longest int8 dot product that cannot overflow int32


def _check_k(k: int, what: str) -> None:
    if k > MAX_K:
        raise OverflowError(f"{what}: a dot product of {k} int8 terms can overflow int32 (limit {MAX_K})")


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for int8 tensors (batched like ``torch.matmul``), int32 result."""
    require_dtype(a, torch.int8, "int_matmul operand a")
    require_dtype(b, torch.int8, "int_matmul operand b")
    _check_k(a.shape[-1], "int_matmul")
    return torch.matmul(a.to(torch.int32), b.to(torch.int32))


def int_prob_matmul(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``p @ v`` for Shiftmax probabilities ``p`` (int8 or int16, ≥ 0, each row summing to at most 2^15) and int8
    ``v``: |Σ p·v| ≤ 128 · 2^15 = 2^22 whatever the row length, so int32 accumulation is exact. 16-bit
    probabilities are what long rows need: at 8 bits (1/128) a uniform row of more than 128 tokens floors to 0."""
    if not isinstance(p, torch.Tensor) or p.dtype not in (torch.int8, torch.int16):
        raise TypeError(f"int_prob_matmul probabilities must be int8 or int16, got {getattr(p, 'dtype', type(p))}")
    require_dtype(v, torch.int8, "int_prob_matmul values")
    p32 = p.to(torch.int32)
    if p32.numel() and (int(p32.min()) < 0 or int(p32.sum(dim=-1).max()) > 2**15):
        raise ValueError("int_prob_matmul takes probabilities ≥ 0 whose rows sum to at most 2^15 (Shiftmax output)")
    return torch.matmul(p32, v.to(torch.int32))


def int_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weightᵀ + bias``: int8 x (…, K), int8 weight (N, K), int32 bias (N); int32 result."""
    require_dtype(weight, torch.int8, "int_linear weight")
    acc = int_matmul(x, weight.t())
    if bias is None:
        return acc
    require_dtype(bias, torch.int32, "int_linear bias")
    return to_int32(acc.to(torch.int64) + as_int64(bias, "bias"), "int_linear output")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, H/p · W/p, C·p·p) in the (c, kh, kw) order of a conv weight flattened per output."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)  # B,gh,gw,C,p,p
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def int_patch_embed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A patch × patch, stride-patch conv as ``int_linear`` on patches: int8 image (B, C, H, W) and weight
    (D, C, p, p) → int32 tokens (B, N, D)."""
    patch = weight.shape[-1]
    return int_linear(patchify(x, patch), weight.reshape(weight.shape[0], -1), bias)
