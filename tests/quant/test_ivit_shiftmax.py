"""Shiftmax: a hand-worked row, bit-exact agreement with float64, float32's drift past 2^24, error vs softmax."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.quant.ivit import exp_x0, shiftmax
from support import ivit_emulation as emu


def test_hand_computed_row() -> None:
    """x0 = −10, n = 4, 8 bits. shift-exp of [0, −7, −100] is [160, 80, 10] (see test_ivit_shift_exp);
    S = 250, factor = ⌊2147483647 / 250⌋ = 8589934;
    160·8589934 = 1374389440 → >> 24 = 81 (81·2^24 = 1358954496 ≤ it < 82·2^24)
     80·8589934 =  687194720 → 40;   10·8589934 = 85899340 → 5.
    Probabilities 81/128, 40/128, 5/128 ≈ 0.63, 0.31, 0.04 against softmax(0, −0.7, −10) ≈ 0.67, 0.33, 0.00003.
    """
    out = shiftmax(torch.tensor([0, -7, -100]), -10, n=4)
    assert out.tolist() == [81, 40, 5] and out.dtype == torch.int8


def test_row_maximum_is_subtracted() -> None:
    row = torch.tensor([[0, -7, -100]])
    assert torch.equal(shiftmax(row + 1234, -10, n=4), shiftmax(row, -10, n=4))


@pytest.mark.parametrize(("scale", "tokens", "bits", "n"), [(0.05, 197, 8, 15), (0.02, 1025, 8, 16),
                                                             (0.3, 64, 16, 15), (0.004, 50, 8, 15)])
def test_bit_exact_with_the_float64_official_algorithm(scale: float, tokens: int, bits: int, n: int) -> None:
    gen = torch.Generator().manual_seed(tokens)
    x = torch.randint(-128, 128, (3, 4, tokens), generator=gen)  # 8-bit attention logits (I-ViT's qact_attn1)
    ours = shiftmax(x, exp_x0(scale), n, bits)
    assert torch.equal(ours.to(torch.int64), emu.shiftmax(x, scale, n, bits, torch.float64).to(torch.int64))
    assert int(ours.min()) >= 0 and int(ours.max()) <= 2 ** (bits - 1) - 1
    assert int(ours.to(torch.int64).sum(-1).max()) <= 2 ** (bits - 1) - 1  # floors never add up past 1


def test_float32_drifts_past_2_pow_24_and_we_do_not() -> None:
    """Uniform attention over 64 tokens at scale 0.0313 (x0 = −32): every e is 32·2^15 = 2^20, S = 2^26.
    Exact: factor = ⌊(2^31 − 1) / 2^26⌋ = 31, out = ⌊2^20 · 31 / 2^24⌋ = 1 for every token.
    The official float32 code cannot hold 2^31 − 1 (it rounds to 2^31): factor 32 and out = 2, twice the
    probability. Our integers equal the float64 algorithm; float32 is off by one LSB everywhere."""
    x = torch.zeros(2, 64, dtype=torch.int64)
    ours = shiftmax(x, exp_x0(0.0313)).to(torch.int64)
    assert exp_x0(0.0313) == -32 and ours.unique().tolist() == [1]
    assert torch.equal(ours, emu.shiftmax(x, 0.0313, 15, 8, torch.float64).to(torch.int64))
    assert emu.shiftmax(x, 0.0313, 15, 8, torch.float32).unique().tolist() == [2.0]


def test_error_against_float_softmax() -> None:
    """Not exact by design: at s = 0.05 over 197 tokens the probabilities are within 0.02 (2.6 LSB of 1/128)."""
    scale = 0.05
    x = torch.randint(-128, 128, (8, 197), generator=torch.Generator().manual_seed(1))
    approx = shiftmax(x, exp_x0(scale)).double() / 128
    err = (approx - torch.softmax(x.double() * scale, -1)).abs().max().item()
    assert 0.005 < err <= 0.02
