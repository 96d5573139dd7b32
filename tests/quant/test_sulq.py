"""SULQ (models_and_quantizers.md §5.1): shift by η, uniform in log2 over [min, max], power-of-two reconstruction.

Hand-computed with η = 0.5 and inputs x = 2^y − η so that y = log2(x + η) is exact; range [min, max] = [0, 5]."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.quant import QuantConfigError, SULQSteps
from mobilevit_deploy.quant.primitives import (
    SULQ_ETAS,
    dequantize_sulq,
    quantize_sulq,
    sulq_calibrate,
    sulq_exponents,
    sulq_max_index,
)

ETA, LO, HI = 0.5, 0.0, 5.0
# y = log2(x + 0.5):  0     1     1.585  2     2.585  3     4      5      6 (above max)
X = torch.tensor([0.5, 1.5, 2.5, 3.5, 5.5, 7.5, 15.5, 31.5, 63.5])


def test_paper_steps_by_hand() -> None:
    # Δ = 5/7 = 0.714; y/Δ = 0, 1.4, 2.22, 2.8, 3.62, 4.2, 5.6, 7, 8.4 → round, clip to [0, 7]
    idx = quantize_sulq(X, ETA, LO, HI, 3)
    assert idx.dtype == torch.int32 and idx.tolist() == [0, 1, 2, 3, 4, 4, 6, 7, 7]
    # exponent round(idx·Δ): 0, .71, 1.43, 2.14, 2.86, 2.86, 4.29, 5, 5
    assert sulq_exponents(idx, LO, HI, 3).tolist() == [0, 1, 1, 2, 3, 3, 4, 5, 5]
    assert dequantize_sulq(idx, ETA, LO, HI, 3).tolist() == [0.5, 1.5, 1.5, 3.5, 7.5, 7.5, 15.5, 31.5, 31.5]


def test_official_forward_steps_by_hand() -> None:
    # Δ = 5/8 = 0.625; y/Δ = 0, 1.6, 2.54, 3.2, 4.14, 4.8, 6.4, 8, 9.6 → round, clip to [0, 8] (2^B + 1 levels)
    steps = SULQSteps.CODE_FORWARD
    idx = quantize_sulq(X, ETA, LO, HI, 3, steps=steps)
    assert idx.tolist() == [0, 2, 3, 3, 4, 5, 6, 8, 8]
    # exponent round(idx·0.625): 0, 1.25, 1.875, 1.875, 2.5 → 2 (half to even), 3.125, 3.75, 5, 5
    assert sulq_exponents(idx, LO, HI, 3, steps=steps).tolist() == [0, 1, 2, 2, 2, 3, 4, 5, 5]
    assert dequantize_sulq(idx, ETA, LO, HI, 3, steps=steps).tolist() == [
        0.5, 1.5, 3.5, 3.5, 3.5, 7.5, 15.5, 31.5, 31.5]


def test_index_range_per_step_choice() -> None:
    assert sulq_max_index(4) == 15 and sulq_max_index(4, SULQSteps.CODE_FORWARD) == 16
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    for steps in SULQSteps:
        idx = quantize_sulq(x, 0.01, -7.0, 0.0, 4, steps=steps)
        assert int(idx.min()) >= 0 and int(idx.max()) <= sulq_max_index(4, steps)


def test_nonzero_min_and_inputs_below_minus_eta() -> None:
    # range [-3, 1], B = 2: Δ = 4/3; x = 2^-3 − 0.1 → y = -3 → idx 0 → 2^-3 − 0.1; x = -1 (below −η) → lowest level
    x = torch.tensor([0.125 - 0.1, 2.0 - 0.1, -1.0])
    idx = quantize_sulq(x, 0.1, -3.0, 1.0, 2)
    assert idx.tolist() == [0, 3, 0]  # y = 1 → (1 + 3)/(4/3) = 3
    deq = dequantize_sulq(idx, 0.1, -3.0, 1.0, 2)
    torch.testing.assert_close(deq, torch.tensor([0.125 - 0.1, 2.0 - 0.1, 0.125 - 0.1]))


def test_calibration_picks_exact_eta() -> None:
    # with η = 1, log2(x + 1) = 0, 1, 2, 3 lands exactly on a 2-bit grid: zero error, every other η errs
    x = torch.tensor([0.0, 1.0, 3.0, 7.0])
    assert sulq_calibrate(x, 2) == (1.0, 0.0, 3.0)


def test_calibration_is_the_least_squares_eta_of_the_grid() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.softmax(torch.randn(8, 50, generator=g) * 2, dim=-1)
    eta, lo, hi = sulq_calibrate(x, 4)
    errors = {}
    for e in SULQ_ETAS:
        y = torch.log2(x + e)
        idx = quantize_sulq(x, e, y.min(), y.max(), 4)
        errors[e] = float((dequantize_sulq(idx, e, y.min(), y.max(), 4) - x).pow(2).sum())
    assert eta == min(errors, key=errors.get)
    y = torch.log2(x + eta)
    assert lo == pytest.approx(float(y.min())) and hi == pytest.approx(float(y.max()))


def test_bad_inputs() -> None:
    with pytest.raises(QuantConfigError):
        sulq_calibrate(torch.ones(3), 4, etas=())
    with pytest.raises(QuantConfigError):
        quantize_sulq(torch.ones(3), 0.1, 0.0, 1.0, 1)
