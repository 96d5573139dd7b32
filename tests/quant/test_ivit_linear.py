"""int8 linear / matmul / patch embedding / probability matmul with int32 accumulation: exact results, dtypes, and
refused misuse."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from mobilevit_deploy.quant.ivit import int_linear, int_matmul, int_patch_embed, int_prob_matmul, patchify, shiftmax
from mobilevit_deploy.quant.ivit.linear import MAX_K


def _int8(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int8)


def test_hand_computed_linear() -> None:
    """[1, −2, 3] · [[4, 5, 6], [−128, 127, 0]]ᵀ + [10, −1] = [4 − 10 + 18 + 10, −128 − 254 + 0 − 1] = [22, −383]."""
    x = torch.tensor([[1, -2, 3]], dtype=torch.int8)
    w = torch.tensor([[4, 5, 6], [-128, 127, 0]], dtype=torch.int8)
    out = int_linear(x, w, torch.tensor([10, -1], dtype=torch.int32))
    assert out.tolist() == [[22, -383]] and out.dtype == torch.int32


def test_linear_and_batched_matmul_are_exact() -> None:
    x, w = _int8((2, 197, 384), 0), _int8((1152, 384), 1)
    bias = torch.randint(-2**24, 2**24, (1152,), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    ref = x.to(torch.int64) @ w.to(torch.int64).T + bias.to(torch.int64)
    assert torch.equal(int_linear(x, w, bias).to(torch.int64), ref)
    q, k = _int8((2, 3, 50, 64), 3), _int8((2, 3, 64, 50), 4)
    assert torch.equal(int_matmul(q, k).to(torch.int64), q.to(torch.int64) @ k.to(torch.int64))


def test_the_longest_safe_dot_product_reaches_int32_exactly() -> None:
    """K = 131071 terms of (−128)·(−128) = 2147467264 ≤ 2^31 − 1; one more term could overflow and is refused."""
    a = torch.full((1, MAX_K), -128, dtype=torch.int8)
    assert int_matmul(a, a.T).item() == MAX_K * 16384 == 2147467264
    b = torch.full((1, MAX_K + 1), 1, dtype=torch.int8)
    with pytest.raises(OverflowError, match="131072 int8 terms can overflow int32"):
        int_matmul(b, b.T)


def test_bias_overflow_is_refused_not_wrapped() -> None:
    x, w = torch.full((1, 4), 127, dtype=torch.int8), torch.full((1, 4), 127, dtype=torch.int8)
    with pytest.raises(OverflowError, match="int_linear output leaves the int32 range"):
        int_linear(x, w, torch.tensor([2**31 - 1], dtype=torch.int32))


def test_patch_embedding_equals_the_strided_conv() -> None:
    """A 16×16 stride-16 conv is a linear layer on patches flattened in the weight's (c, kh, kw) order."""
    image, weight = _int8((2, 3, 32, 48), 5), _int8((192, 3, 16, 16), 6)
    bias = torch.randint(-1000, 1000, (192,), generator=torch.Generator().manual_seed(7), dtype=torch.int32)
    ref = F.conv2d(image.double(), weight.double(), bias.double(), stride=16)  # small integers: float64 is exact
    out = int_patch_embed(image, weight, bias)
    assert out.shape == (2, 6, 192) and out.dtype == torch.int32
    assert torch.equal(out.to(torch.float64), ref.flatten(2).transpose(1, 2))
    assert patchify(image, 16).shape == (2, 6, 768)


def test_operands_must_be_int8() -> None:
    with pytest.raises(TypeError, match=re.escape("operand a must be a torch.int8 tensor, got torch.float32")):
        int_matmul(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.int8))
    with pytest.raises(TypeError, match=re.escape("int_linear weight must be a torch.int8 tensor, got torch.int32")):
        int_linear(torch.ones(2, 2, dtype=torch.int8), torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match=re.escape("int_linear bias must be a torch.int32 tensor, got torch.int64")):
        int_linear(torch.ones(2, 2, dtype=torch.int8), torch.ones(2, 2, dtype=torch.int8), torch.ones(2).long())


def test_probability_matmul_takes_16_bit_shiftmax_rows() -> None:
    """16-bit Shiftmax rows (sum ≤ 2^15) times int8 values stay within 128 · 2^15 = 2^22 for any row length:
    here 1175 tokens (the decoder at 512²), which an int16 × int8 bound by dtype alone would refuse."""
    logits = torch.randint(-3000, 1, (2, 3, 4, 1175), generator=torch.Generator().manual_seed(8))
    p = shiftmax(logits, -64, 8, output_bits=16)
    v = _int8((2, 3, 1175, 64), 9)
    assert p.dtype == torch.int16 and int(p.to(torch.int64).sum(-1).max()) <= 2**15
    out = int_prob_matmul(p, v)
    assert out.dtype == torch.int32 and torch.equal(out.to(torch.int64), p.to(torch.int64) @ v.to(torch.int64))
    # by hand: [2^14, 2^14] · [[−128], [127]] = −2^21 + 127·2^14 = −16384
    assert int_prob_matmul(torch.tensor([[2**14, 2**14]], dtype=torch.int16),
                           torch.tensor([[-128], [127]], dtype=torch.int8)).item() == -16384
    with pytest.raises(ValueError, match="rows sum to at most 2\\^15"):
        int_prob_matmul(torch.full((1, 3), 2**14, dtype=torch.int16), torch.ones(3, 1, dtype=torch.int8))
