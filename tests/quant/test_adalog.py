"""AdaLog (models_and_quantizers.md §4.2): tables, indices and dequantized values bit for bit, overflow to zero,
the exact training-mode path, and the SQNR ordering that motivates log quantizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobilevit_deploy.quant import PerChannel, QuantConfigError, sqnr_db
from mobilevit_deploy.quant.primitives import (
    ADALOG_R,
    adalog_mantissa_denominator,
    adalog_mantissa_numerators,
    adalog_mantissa_table,
    adalog_shift_table,
    dequantize_adalog,
    dequantize_log2,
    dequantize_uniform,
    log_zero_code,
    minmax_range,
    mse_range,
    qparams_from_range,
    quantize_adalog,
    quantize_log2,
    quantize_uniform,
)

# Hand-computed tables: shift[i] = floor(i·q/37), mantissa numerator = round(2^(−((q·i) mod 37)/37) · (2^(B+1)−2)).
TABLES = {
    # §4.2's own example (denominator 30)
    (20, 4): ([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7, 8],
              [30, 21, 28, 19, 27, 18, 25, 17, 24, 16, 23, 16, 21, 29, 20, 28]),
    # q = 50: q·i = 0, 50, …, 350 → floor /37 = 0,1,2,4,5,6,8,9; residues 0,13,26,2,15,28,4,17;
    # 14·2^(−j/37) = 14, 10.97, 8.60, 13.48, 10.57, 8.28, 12.99, 10.18 → rounded (denominator 14)
    (50, 3): ([0, 1, 2, 4, 5, 6, 8, 9], [14, 11, 9, 13, 11, 8, 13, 10]),
    # q = 37 is base 2: pure shifts, mantissa exactly 1
    (37, 3): (list(range(8)), [14] * 8),
    (37, 4): (list(range(16)), [30] * 16),
    (37, 6): (list(range(64)), [126] * 64),
}


@pytest.mark.parametrize(("q", "bits"), list(TABLES))
def test_tables_match_hand_computation(q: int, bits: int) -> None:
    shifts, numerators = TABLES[(q, bits)]
    assert adalog_shift_table(q, bits).tolist() == shifts
    assert adalog_mantissa_numerators(q, bits).tolist() == numerators
    d = adalog_mantissa_denominator(bits)
    assert adalog_mantissa_table(q, bits).tolist() == np.float32(np.array(numerators) / d).tolist()


def test_six_bit_q10_table_entries() -> None:
    # denominator 126; i=1..4: residues 10, 20, 30, 3 (40 = 37 + 3, shift 1); i=63: 630 = 17·37 + 1
    shifts, nums = adalog_shift_table(10, 6).tolist(), adalog_mantissa_numerators(10, 6).tolist()
    assert shifts[:5] == [0, 0, 0, 0, 1] and shifts[63] == 17
    assert nums[:5] == [126, 104, 87, 72, 119] and nums[63] == 124  # 126·2^(−1/37) = 123.66


def _lut_expected(idx: list[int], shifts: list[int], nums: list[int], d: int, scale: float) -> list[float]:
    """§4.2 hardware dequant computed independently in float32: 2^(−shift) · mantissa · scale, 0 for overflow."""
    zc = len(shifts)
    return [0.0 if i == zc else float(np.float32(2.0 ** -shifts[i]) * np.float32(nums[i] / d) * np.float32(scale))
            for i in idx]


# (q, bits, inputs as powers of two, expected indices); -log2(x)·37/q worked out by hand in the comments
CASES = [
    # q=20: k·1.85 for k = 0..9 → 0, 1.85, 3.7, 5.55, 7.4, 9.25, 11.1, 12.95, 14.8, 16.65 (≥ 16 → zero)
    (20, 4, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 2, 4, 6, 7, 9, 11, 13, 15, 16]),
    # q=50: k·0.74 for k = 0,1,2,3,5,7,8,9,10,11 → 0, .74, 1.48, 2.22, 3.7, 5.18, 5.92, 6.66, 7.4, 8.14 (≥ 8)
    (50, 3, [0, 1, 2, 3, 5, 7, 8, 9, 10, 11], [0, 1, 1, 2, 4, 5, 6, 7, 7, 8]),
    # q=37: index = k, but x/scale is clamped to 1e-15 first and -log2(1e-15) = 49.8, so at 6 bits (and 8)
    # no index above 50 is reachable and nothing overflows to zero (true of the official code as well)
    (37, 6, [0, 1, 5, 17, 49, 50, 63], [0, 1, 5, 17, 49, 50, 50]),
    # q=10 at 6 bits: k·3.7 for k = 1, 2, 17, 18 → 3.7, 7.4, 62.9, 66.6 (≥ 64 → zero)
    (10, 6, [1, 2, 17, 18], [4, 7, 63, 64]),
]


@pytest.mark.parametrize(("q", "bits", "powers", "expected"), CASES)
@pytest.mark.parametrize("scale", [1.0, 0.75])
def test_indices_and_lut_dequant_by_hand(q: int, bits: int, powers: list[int], expected: list[int],
                                         scale: float) -> None:
    x = torch.tensor([scale * 2.0**-k for k in powers], dtype=torch.float32)
    idx = quantize_adalog(x, scale, q, bits)
    assert idx.dtype == torch.int32 and idx.tolist() == expected
    shifts, nums = adalog_shift_table(q, bits).tolist(), adalog_mantissa_numerators(q, bits).tolist()
    want = _lut_expected(expected, shifts, nums, adalog_mantissa_denominator(bits), scale)
    assert dequantize_adalog(idx, scale, q, bits).tolist() == want


def test_q20_values_from_reference_table() -> None:
    idx = quantize_adalog(torch.tensor([0.5, 0.125]), 1.0, 20, 4)  # → 2 and 6
    assert idx.tolist() == [2, 6]
    assert dequantize_adalog(idx, 1.0, 20, 4).tolist() == [
        float(np.float32(0.5) * np.float32(28 / 30)), float(np.float32(2.0**-3) * np.float32(25 / 30))]


def test_zero_negative_and_above_scale_inputs() -> None:
    x = torch.tensor([0.0, -3.0, 5.0, 1.0])  # 0 and negatives clamp to 1e-15; above scale clamps to 1
    idx = quantize_adalog(x, 1.0, 37, 4)
    assert idx.tolist() == [log_zero_code(4), log_zero_code(4), 0, 0]
    assert dequantize_adalog(idx, 1.0, 37, 4).tolist() == [0.0, 0.0, 1.0, 1.0]
    # with a large base the clamped 1e-15 no longer overflows (49.8·37/138 = 13.4 → 13): as in the official code
    assert quantize_adalog(torch.tensor([0.0]), 1.0, 138, 4).tolist() == [13]


def test_exact_training_path_and_lut_error_bounds() -> None:
    idx = torch.arange(16, dtype=torch.int32)
    for q in (20, 60):
        exact = dequantize_adalog(idx, 1.0, q, 4, exact=True)
        want = [float(np.float32(2.0) ** (np.float32(-i * q) / np.float32(ADALOG_R))) for i in range(16)]
        assert exact.tolist() == want
        rel = ((dequantize_adalog(idx, 1.0, q, 4) - exact).abs() / exact).max().item()
        assert 0 < rel <= 0.029  # §4.2: LUT vs exact ≤ 2.9 % at 4 bits
    exact37 = dequantize_adalog(idx, 1.0, 37, 4, exact=True)
    assert torch.equal(dequantize_adalog(idx, 1.0, 37, 4), exact37)


def test_lut_path_equals_explicit_tables_for_many_q_and_tensor_q() -> None:
    g = torch.Generator().manual_seed(0)
    for bits in (3, 4, 6):
        idx = torch.randint(0, 2**bits + 1, (500,), generator=g, dtype=torch.int32)  # includes the zero code
        for q in (10, 20, 37, 50, 99, 137):
            shift, mant = adalog_shift_table(q, bits), adalog_mantissa_table(q, bits)
            i = idx.clamp(max=2**bits - 1).long()
            want = (torch.pow(2.0, -shift[i].float()) * mant[i] * 0.3) * (idx < 2**bits)
            assert torch.equal(dequantize_adalog(idx, 0.3, q, bits), want)
    # vectorized over q candidates ([n_q, 1] against [1, m] inputs) = one call per q
    x = torch.rand(1, 300, generator=g)
    qs = torch.tensor([[12], [37], [80]])
    idx = quantize_adalog(x, 1.0, qs, 4)
    deq = dequantize_adalog(idx, 1.0, qs, 4)
    for row, q in enumerate((12, 37, 80)):
        assert torch.equal(idx[row], quantize_adalog(x[0], 1.0, q, 4))
        assert torch.equal(deq[row], dequantize_adalog(idx[row], 1.0, q, 4))


def test_per_channel_scale() -> None:
    x = torch.tensor([[1.0, 0.5], [4.0, 2.0]])
    idx = quantize_adalog(x, torch.tensor([1.0, 4.0]), 37, 3, granularity=PerChannel(0))
    assert idx.tolist() == [[0, 1], [0, 1]]
    deq = dequantize_adalog(idx, torch.tensor([1.0, 4.0]), 37, 3, granularity=PerChannel(0))
    assert torch.equal(deq, x)


def test_bad_q_and_bits() -> None:
    with pytest.raises(QuantConfigError):
        quantize_adalog(torch.ones(2), 1.0, 0, 4)
    with pytest.raises(QuantConfigError):
        adalog_shift_table(20, 9)
    with pytest.raises(QuantConfigError):
        quantize_adalog(torch.ones(2), 1.0, torch.tensor([2.5]), 4)


def _uniform_sqnr(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> float:
    s, z = qparams_from_range(lo, hi, 4, symmetric=False)
    return sqnr_db(x, dequantize_uniform(quantize_uniform(x, s, z, 4, symmetric=False), s, z))


@pytest.mark.parametrize("sample", ["pareto", "softmax"])
def test_sqnr_ordering_on_power_law_at_4_bits(sample: str) -> None:
    g = torch.Generator().manual_seed(0)
    if sample == "pareto":  # heavy power-law tail (α = 1.5), normalised to max 1
        x = (1 - torch.rand(50_000, generator=g)) ** (-1 / 1.5)
        x = x / x.max()
    else:  # attention probabilities with per-row temperatures from flat to peaked
        logits = torch.randn(16, 64, 197, generator=g) * torch.logspace(-1, 1, 16)[:, None, None]
        x = torch.softmax(logits, dim=-1)
    uniform = max(_uniform_sqnr(x, *minmax_range(x)), _uniform_sqnr(x, *mse_range(x, 4, symmetric=False)))
    log2 = sqnr_db(x, dequantize_log2(quantize_log2(x, 1.0, 4), 1.0, 4))
    adalog = max(sqnr_db(x, dequantize_adalog(quantize_adalog(x, 1.0, q, 4), 1.0, q, 4)) for q in range(10, 138))
    assert adalog > log2 > uniform, (adalog, log2, uniform)
