"""Exact log-domain indices: decided by float64 decision thresholds, so every runtime that compares with the same
constants gets the same integers (``quant.primitives`` module docstring)."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.quant import SULQSteps
from mobilevit_deploy.quant.primitives import (
    adalog_thresholds,
    log_zero_code,
    quantize_adalog,
    quantize_log2,
    quantize_sulq,
    sulq_max_index,
    sulq_step,
    sulq_thresholds,
)


def _ref_adalog(x: torch.Tensor, q: int, bits: int) -> torch.Tensor:
    """round(−log_b(clamp(x, 1e-15, 1))) in float64 (no float32 log error), overflow → zero code."""
    level = -torch.log2(x.double().clamp(torch.tensor(1e-15, dtype=torch.float32).item(), 1.0)) * 37.0 / q
    idx = torch.round(level)
    return torch.where(idx < 2**bits, idx, torch.full_like(idx, 2**bits)).long()


@pytest.mark.parametrize(("q", "bits"), [(10, 4), (20, 8), (37, 3), (99, 6), (137, 8)])
def test_adalog_index_equals_float64_rounding(q: int, bits: int) -> None:
    x = torch.rand(1 << 20, generator=torch.Generator().manual_seed(q)) ** 6  # dense over many decades
    assert torch.equal(quantize_adalog(x, 1.0, q, bits).long(), _ref_adalog(x, q, bits))
    if q == 37:
        assert torch.equal(quantize_log2(x, 1.0, bits).long(), _ref_adalog(x, q, bits))


@pytest.mark.parametrize(("q", "bits"), [(20, 4), (50, 3), (37, 6)])
def test_adalog_thresholds_decide_exactly_at_the_boundary(q: int, bits: int) -> None:
    t = adalog_thresholds(q, bits)
    k = torch.arange(1, 2**bits + 1)
    at, above = t[k], torch.nextafter(t[k], torch.tensor(2.0))
    assert t.shape == (2**bits + 2,) and t[0] == float("inf") and t[-1] == 0.0
    assert bool((t[1:-1].double() <= 2.0 ** (-(k.double() - 0.5) * q / 37)).all())  # rounded down
    keep = at >= 1e-15  # below the 1e-15 clamp a threshold cannot be reached
    want = torch.where(k >= log_zero_code(bits), log_zero_code(bits), k)
    assert torch.equal(quantize_adalog(at[keep], 1.0, q, bits).long(), want[keep])
    assert torch.equal(quantize_adalog(above[keep], 1.0, q, bits).long(), k[keep] - 1)
    qs = torch.tensor([[q], [q]])  # a tensor of q candidates takes the same thresholds
    assert torch.equal(quantize_adalog(at[keep][None], 1.0, qs, bits)[1].long(), want[keep])


@pytest.mark.parametrize("steps", list(SULQSteps))
def test_sulq_index_equals_float64_rounding_and_thresholds(steps: SULQSteps) -> None:
    eta, lo, hi, bits = 0.01, -9.7, 0.01, 4
    x = torch.rand(1 << 20, generator=torch.Generator().manual_seed(1)) ** 4
    d = float(sulq_step(lo, hi, bits, steps).float())
    lo32 = float(torch.tensor(lo, dtype=torch.float32))
    ref = torch.round((torch.log2((x + eta).double()) - lo32) / d).clamp(0, sulq_max_index(bits, steps)).long()
    assert torch.equal(quantize_sulq(x, eta, lo, hi, bits, steps=steps).long(), ref)


def test_sulq_thresholds_decide_exactly_at_the_boundary() -> None:
    # η = 0.5 and y = x + η in [0.5, 1]: x = U[k] − 0.5 and back are exact in float32 (Sterbenz)
    eta, lo, hi, bits = 0.5, -1.0, 0.0, 3
    u = sulq_thresholds(lo, hi, bits)
    k = torch.arange(1, sulq_max_index(bits) + 1)
    assert u[0] == 0.0 and u[-1] == float("inf")
    below = torch.nextafter(u[k], torch.tensor(0.0))
    assert torch.equal(quantize_sulq(u[k] - eta, eta, lo, hi, bits).long(), k)
    assert torch.equal(quantize_sulq(below - eta, eta, lo, hi, bits).long(), k - 1)
