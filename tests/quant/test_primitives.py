"""Uniform, log2 and range-chooser primitives: hand-computed cases, the ±scale/2 property, granularity shapes."""

from __future__ import annotations

import math

import pytest
import torch

from mobilevit_deploy.quant import PerChannel, PerHead, PerTensor, QuantConfigError, RangeMethod, sqnr_db
from mobilevit_deploy.quant.granularity import broadcast_param, group_view, num_groups
from mobilevit_deploy.quant.primitives import (
    choose_range,
    dequantize_log2,
    dequantize_uniform,
    log_zero_code,
    minmax_range,
    mse_range,
    percentile_range,
    qparams_from_range,
    quantize_log2,
    quantize_uniform,
    uniform_qrange,
)


def test_qrange() -> None:
    assert uniform_qrange(4, symmetric=False) == (0, 15)
    assert uniform_qrange(4, symmetric=True) == (-7, 7)
    assert uniform_qrange(8, symmetric=True) == (-127, 127)
    with pytest.raises(QuantConfigError):
        uniform_qrange(9, symmetric=False)


def test_uniform_asymmetric_by_hand() -> None:
    # range [-1, 3] at 2 bits: scale = 4/3, zero point = round(1 / (4/3)) = round(0.75) = 1
    scale, zp = qparams_from_range(torch.tensor([-1.0]), torch.tensor([3.0]), 2, symmetric=False)
    assert scale.item() == pytest.approx(4 / 3) and zp.item() == 1
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 3.0, 9.0])
    q = quantize_uniform(x, scale, zp, 2, symmetric=False)
    # x/s = -0.75, 0, 0.375, 0.75, 2.25, 6.75 → round → -1, 0, 0, 1, 2, 7 → +1 → clamp [0, 3]
    assert q.dtype == torch.int32 and q.tolist() == [0, 1, 1, 2, 3, 3]
    deq = dequantize_uniform(q, scale, zp)
    torch.testing.assert_close(deq, torch.tensor([-4 / 3, 0, 0, 4 / 3, 8 / 3, 8 / 3]))


def test_uniform_symmetric_by_hand_rounds_half_to_even() -> None:
    x = torch.tensor([-7.5, -1.2, 0.0, 0.49, 0.5, 1.5, 0.51, 7.0, 100.0])
    q = quantize_uniform(x, 1.0, 0, 4, symmetric=True)
    assert q.tolist() == [-7, -1, 0, 0, 0, 2, 1, 7, 7]


def test_qparams_include_zero_and_survive_empty_range() -> None:
    scale, zp = qparams_from_range(torch.tensor([2.0]), torch.tensor([5.0]), 8, symmetric=False)
    assert zp.item() == 0 and scale.item() == pytest.approx(5 / 255)  # range widened to [0, 5]
    scale, zp = qparams_from_range(torch.tensor([0.0]), torch.tensor([0.0]), 8, symmetric=True)
    assert scale.item() > 0 and zp.item() == 0


def test_per_channel_symmetric_weight_by_hand() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    lo, hi = minmax_range(w, PerChannel(0))
    scale, zp = qparams_from_range(lo, hi, 8, symmetric=True)
    torch.testing.assert_close(scale, torch.tensor([2 / 127, 4 / 127]))
    q = quantize_uniform(w, scale, zp, 8, symmetric=True, granularity=PerChannel(0))
    assert q.tolist() == [[64, -127], [16, 127]]  # 63.5 → 64 (half to even), 15.875 → 16


def test_granularity_shapes() -> None:
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    assert num_groups(PerTensor(), x.shape) == 1
    assert num_groups(PerChannel(1), x.shape) == 4
    assert num_groups(PerHead(1, 2), x.shape) == 2
    assert group_view(x, PerChannel(-1)).shape == (3, 8)
    heads = group_view(x, PerHead(1, 2))
    assert heads.shape == (2, 12)
    assert set(heads[0].tolist()) == set(x[:, :2].flatten().tolist())  # channels 0-1 form head 0
    p = broadcast_param(torch.tensor([10.0, 20.0]), PerHead(1, 2), x)
    assert p.shape == (1, 4, 1) and p.flatten().tolist() == [10, 10, 20, 20]
    with pytest.raises(QuantConfigError, match="divisible"):
        num_groups(PerHead(1, 3), x.shape)
    with pytest.raises(QuantConfigError, match="expects 4"):
        broadcast_param(torch.ones(3), PerChannel(1), x)
    with pytest.raises(QuantConfigError, match="out of range"):
        group_view(x, PerChannel(3))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("granularity", [PerTensor(), PerChannel(1), PerHead(1, 2)])
def test_roundtrip_error_at_most_half_scale_inside_range(symmetric: bool, bits: int, granularity) -> None:
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(3, 4, 50, generator=g) * 3 + 0.5
    lo, hi = minmax_range(x, granularity)
    scale, zp = qparams_from_range(lo, hi, bits, symmetric=symmetric)
    q = quantize_uniform(x, scale, zp, bits, symmetric=symmetric, granularity=granularity)
    qmin, qmax = uniform_qrange(bits, symmetric)
    assert int(q.min()) >= qmin and int(q.max()) <= qmax
    err = (dequantize_uniform(q, scale, zp, granularity=granularity) - x).abs()
    s = broadcast_param(scale, granularity, x)
    assert bool((err <= s / 2 * (1 + 1e-5) + 1e-7).all())


def test_percentile_matches_torch_quantile() -> None:
    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0))
    lo, hi = percentile_range(x, PerChannel(0), pct=0.99)
    torch.testing.assert_close(hi, torch.quantile(x, 0.99, dim=1))
    torch.testing.assert_close(lo, torch.quantile(x, 0.01, dim=1))


def test_mse_range_clips_outliers_and_is_vectorized_per_channel() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4000, generator=g)
    x[:, 0] = 40.0  # one outlier per row
    lo, hi = mse_range(x, 4, symmetric=False, granularity=PerChannel(0))
    assert bool((hi < 40.0).all())
    for row in range(3):  # same answer as searching each row on its own
        lo_r, hi_r = mse_range(x[row], 4, symmetric=False)
        assert lo_r.item() == lo[row].item() and hi_r.item() == hi[row].item()

    def fq(lo_: torch.Tensor, hi_: torch.Tensor) -> torch.Tensor:
        s, z = qparams_from_range(lo_, hi_, 4, symmetric=False)
        return dequantize_uniform(quantize_uniform(x, s, z, 4, symmetric=False, granularity=PerChannel(0)), s, z,
                                  granularity=PerChannel(0))

    assert sqnr_db(x, fq(lo, hi)) > sqnr_db(x, fq(*minmax_range(x, PerChannel(0)))) + 3


def test_choose_range_dispatch() -> None:
    x = torch.linspace(-1, 1, 101)
    assert [t.item() for t in choose_range(x, RangeMethod.MINMAX, bits=8, symmetric=False)] == [-1.0, 1.0]
    lo, _ = choose_range(x, RangeMethod.PERCENTILE, bits=8, symmetric=False, pct=0.9)
    assert lo.item() == pytest.approx(-0.8)
    with pytest.raises(QuantConfigError, match="FPCS"):
        choose_range(x, RangeMethod.FPCS, bits=8, symmetric=False)


def test_log2_by_hand_with_overflow_to_zero() -> None:
    x = torch.tensor([3.0, 1.0, 0.5, 0.3, 2.0**-15, 2.0**-15.6, 2.0**-16, 0.0])
    idx = quantize_log2(x, 1.0, 4)
    # -log2: clamp→0, 0, 1, 1.737→2, 15, 15.6→16 ≥ 16 → zero code, 16 → zero code, 1e-15 → 49.8 → zero code
    zc = log_zero_code(4)
    assert zc == 16 and idx.tolist() == [0, 0, 1, 2, 15, zc, zc, zc]
    deq = dequantize_log2(idx, 1.0, 4)
    assert deq.tolist() == [1.0, 1.0, 0.5, 0.25, 2.0**-15, 0.0, 0.0, 0.0]
    deq_s = dequantize_log2(quantize_log2(x * 0.25, 0.25, 4), 0.25, 4)
    assert deq_s.tolist() == [v * 0.25 for v in deq.tolist()]


def test_sqnr_db() -> None:
    ref = torch.tensor([3.0, 4.0])
    assert sqnr_db(ref, ref.clone()) == math.inf
    assert sqnr_db(ref, torch.tensor([3.0, 4.5])) == pytest.approx(20.0)  # ‖ref‖ = 5, noise 0.5
    assert sqnr_db(torch.zeros(2), torch.ones(2)) == -math.inf
    with pytest.raises(ValueError, match="shapes"):
        sqnr_db(ref, torch.ones(3))
