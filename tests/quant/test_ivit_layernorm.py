"""I-LayerNorm and the integer Newton square root: hand-worked integers, float64 agreement, float32 drift, the
β/γ folding, and the error against float LayerNorm."""

from __future__ import annotations

import math

import pytest
import torch

from mobilevit_deploy.quant import QuantConfigError
from mobilevit_deploy.quant.ivit import int_layernorm, isqrt_newton, layernorm_bias_int, layernorm_output_scale
from mobilevit_deploy.quant.ivit._int import round_half_even_div
from support import ivit_emulation as emu


def test_newton_square_root_by_hand() -> None:
    """k ← ⌊(k + ⌊var/k⌋)/2⌋ from 2^16, 10 times.
    var = 10^10: 65536 → ⌊(65536 + 152587)/2⌋ = 109061 → ⌊(109061 + 91691)/2⌋ = 100376 → ⌊(100376 + 99625)/2⌋
                 = 100000 → stays 100000 (√ = 100000).
    var = 560000: 32772, 16394, 8214, 4141, 2138, 1199, 833, 752, 748, 748 (√ = 748.3).
    var = 14: only halves, 65536 → 64 after 10 steps (√ = 3.7): the official start and count are kept as is."""
    assert isqrt_newton(torch.tensor([10**10, 560000, 14])).tolist() == [100000, 748, 64]


def test_newton_converges_on_the_16_bit_range_only() -> None:
    """Starting at 2^16, 10 steps reach ⌊√var⌋ (or one above it, where the integer iteration oscillates next to
    a perfect square, e.g. var = 2^42 − 1) for var in [2^16, 2^44): the range of Σy² for 16-bit inputs.
    Outside it the official iteration has not converged yet: var = 4096 gives 83 (√ = 64), var = 2^48 gives more
    than 2^24 + 10^4 (√ = 2^24)."""
    var = torch.cat([torch.randint(2**16, 2**44, (5000,), generator=torch.Generator().manual_seed(0)),
                     torch.tensor([2**16, 2**42 - 1, 2**44 - 1])])
    off = isqrt_newton(var) - torch.tensor([math.isqrt(v) for v in var.tolist()])
    assert int(off.min()) == 0 and int(off.max()) == 1 and float((off == 0).float().mean()) > 0.99
    assert isqrt_newton(torch.tensor([2**42 - 1])).item() == 2**21  # ⌊√⌋ = 2^21 − 1
    assert isqrt_newton(torch.tensor([4096])).item() == 83
    assert isqrt_newton(torch.tensor([2**48])).item() > 2**24 + 10000


def test_mean_rounds_ties_to_even_like_torch_round() -> None:
    # 3/2 = 1.5 → 2;  5/2 = 2.5 → 2;  −3/2 = −1.5 → −2;  7/2 = 3.5 → 4;  −5/2 = −2.5 → −2;  10/4 = 2.5 → 2
    assert round_half_even_div(torch.tensor([3, 5, -3, 7, -5]), 2).tolist() == [2, 2, -2, 4, -2]
    assert round_half_even_div(torch.tensor([10, 11, -11]), 4).tolist() == [2, 3, -3]


def test_hand_computed_row() -> None:
    """x = [100, 300, 500, 1100]: mean 500, y = [−400, −200, 0, 600], var = Σy² = 560000, std = 748,
    factor = ⌊2147483647 / 748⌋ = 2870967, out = ⌊y · factor / 2⌋ = [−574193400, −287096700, 0, 861290100].
    Scale √4 / 2^30 = 2^−29: −1.0695, −0.5348, 0, 1.6043 against (y / σ) = −1.0690, −0.5345, 0, 1.6036.
    Odd products floor downwards: y = −1 with factor 2870967 → ⌊−1435483.5⌋ = −1435484."""
    assert int_layernorm(torch.tensor([100, 300, 500, 1100])).tolist() == [-574193400, -287096700, 0, 861290100]
    # x = [−1, 0, 1, 0]: mean ⌊0 / 4⌉ = 0, var = 2, std = 64 (10 halvings), factor 33554431:  −33554431 >> 1
    assert int_layernorm(torch.tensor([-1, 0, 1, 0])).tolist() == [-16777216, 0, 16777215, 0]


@pytest.mark.parametrize(("dim", "amplitude"), [(192, 2**15), (384, 2**11), (192, 300), (150, 2**13)])
def test_bit_exact_with_the_float64_official_algorithm(dim: int, amplitude: int) -> None:
    """16-bit residual-stream rows (I-ViT's QuantAct(16) before each LayerNorm), with and without a bias."""
    gen = torch.Generator().manual_seed(dim + amplitude)
    x = torch.randint(-amplitude, amplitude, (32, dim), generator=gen)
    x[:4] += torch.randint(-5 * amplitude, 5 * amplitude, (4, 1), generator=gen)  # rows with a large mean
    bias = torch.randint(-2**28, 2**28, (dim,), generator=gen)
    assert torch.equal(int_layernorm(x), emu.layernorm(x, torch.float64).to(torch.int64))
    assert torch.equal(int_layernorm(x, bias), emu.layernorm(x, torch.float64, bias).to(torch.int64))


def test_float32_drifts_past_2_pow_24_and_we_do_not() -> None:
    """Σy² ≈ 192 · 2^30 and y · factor ≈ 2^32: float32 rounds both; most outputs move (by up to ~10 units of
    2^−30·√D here), while the float64 algorithm and our integers agree exactly."""
    x = torch.randint(-2**15, 2**15, (64, 192), generator=torch.Generator().manual_seed(5))
    ours = int_layernorm(x)
    assert torch.equal(ours, emu.layernorm(x, torch.float64).to(torch.int64))
    diff = (emu.layernorm(x, torch.float32).to(torch.int64) - ours).abs()
    assert int((diff > 0).sum()) > x.numel() // 4 and int(diff.max()) <= 64


def test_affine_folding_matches_float_layernorm() -> None:
    """β/γ becomes an integer bias at scale √D/2^30; γ is applied by the caller (here in float, later folded into
    the next requantization). Once Newton has converged the result is float LayerNorm to ~1e-5."""
    dim, scale = 192, 0.01
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(-2**14, 2**14, (16, dim), generator=gen)
    gamma = 1 + 0.3 * torch.randn(dim, generator=gen, dtype=torch.float64)
    beta = 0.5 * torch.randn(dim, generator=gen, dtype=torch.float64)
    out = int_layernorm(x, layernorm_bias_int(beta, gamma)).double() * layernorm_output_scale(dim) * gamma
    ref = torch.nn.functional.layer_norm(x.double() * scale, (dim,), gamma, beta, eps=0.0)
    assert float((out - ref).abs().max()) <= 2e-4 * float(ref.abs().max())


def test_gamma_zero_and_huge_inputs_are_refused() -> None:
    with pytest.raises(QuantConfigError, match="weight γ is zero"):
        layernorm_bias_int(torch.ones(4, dtype=torch.float64), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(OverflowError, match="too large for an int64"):
        int_layernorm(torch.tensor([[-(2**31), 2**31 - 1] * 96]))
    with pytest.raises(TypeError, match="integer tensor"):
        int_layernorm(torch.ones(4))
