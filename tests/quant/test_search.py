"""FPCS (models_and_quantizers.md §4.4) on synthetic problems whose optimum is known."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.quant import FPCSOptions, PerChannel, QuantConfigError, fpcs
from mobilevit_deploy.quant.primitives import dequantize_adalog, quantize_adalog
from mobilevit_deploy.quant.search import ADALOG_FPCS, prefilter_aux, uniform_fpcs_grid


def test_finds_known_optimum_of_a_smooth_objective() -> None:
    s_star, a_star = 0.3217, 11.0
    calls: list[int] = []

    def objective(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        calls.append(s.shape[0])
        return (s - s_star) ** 2 + 0.01 * (a - a_star) ** 2

    result = fpcs(objective, torch.linspace(0.1, 1.0, 16, dtype=torch.float64), torch.arange(4.0, 20.0).double())
    assert result.aux.item() == a_star
    assert result.scale.item() == pytest.approx(s_star, abs=1e-4)
    assert calls == [16 * 16] + [16 * 8] * 5  # coarse grid, then top-16 × 8 new scales for 5 rounds


def test_recovers_scale_and_zero_point_of_data_on_a_grid() -> None:
    # x lies exactly on a 4-bit asymmetric grid (scale 0.05, zero point 6): that pair has zero error
    s_star, z_star = 0.05, 6
    x = (torch.randint(0, 16, (2000,), generator=torch.Generator().manual_seed(0)) - z_star).double() * s_star

    def mse(s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # [N, 1] candidates → [N, 1] losses
        xs = x[None, :]
        deq = ((torch.round(xs / s) + z).clamp(0, 15) - z) * s
        return (deq - xs).pow(2).mean(dim=1, keepdim=True)

    lo, hi = x.min().item(), x.max().item()
    scales = torch.linspace((hi - lo) * 0.8, (hi - lo) * 1.2, 16, dtype=torch.float64) / 15
    zps = torch.arange(0.0, 16.0, dtype=torch.float64)
    result = fpcs(mse, scales, zps)
    assert result.aux.item() == z_star
    assert result.scale.item() == pytest.approx(s_star, rel=1e-3)
    assert result.loss.item() < 1e-8


def test_groups_are_searched_independently() -> None:
    targets = torch.tensor([0.2, 0.55, 0.9], dtype=torch.float64)
    scales = torch.linspace(0.1, 1.0, 10, dtype=torch.float64)[:, None] * torch.ones(3, dtype=torch.float64)

    def objective(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return (s - targets) ** 2 + (a - torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)) ** 2

    result = fpcs(objective, scales, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                  FPCSOptions(top_k=4, steps=5, new_per_survivor=6))
    torch.testing.assert_close(result.scale, targets, atol=1e-4, rtol=0)
    assert result.aux.tolist() == [1.0, 2.0, 3.0]


def test_keep_survivors_never_loses_the_best_coarse_candidate() -> None:
    g = torch.Generator().manual_seed(3)
    table = torch.rand(1000, generator=g, dtype=torch.float64)

    def bumpy(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # rugged: refinement can only hurt by chance
        return table[((s * 997).long() + a.long()) % 1000]

    scales, aux = torch.linspace(0.1, 1.0, 16, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64)
    coarse_best = bumpy(scales.repeat(8)[:, None], aux.repeat_interleave(16)[:, None]).min().item()
    kept = fpcs(bumpy, scales, aux, FPCSOptions(keep_survivors=True))
    assert kept.loss.item() <= coarse_best
    assert bumpy(kept.scale[:, None], kept.aux[:, None]).item() == kept.loss.item()


def test_adalog_scale_and_q_search() -> None:
    # post-softmax-like data: pre-filter q at scale 1, then FPCS over (scale, q) with the §4.4 AdaLog shape
    x = torch.softmax(torch.randn(32, 64, generator=torch.Generator().manual_seed(0)) * 3, dim=-1).reshape(1, -1)

    def mse(s: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        deq = dequantize_adalog(quantize_adalog(x, s, q.long(), 4), s, q.long(), 4)
        return (deq - x).pow(2).mean(dim=1, keepdim=True)

    q_all = torch.arange(10.0, 138.0)
    q_top = prefilter_aux(mse, q_all, torch.tensor([1.0]), keep=8)
    assert q_top.shape == (8, 1)
    exhaustive = mse(torch.ones(128, 1), q_all[:, None])
    assert q_top[0].item() == q_all[exhaustive.argmin()].item()
    result = fpcs(mse, torch.linspace(0.5, 1.0, 16), q_top, ADALOG_FPCS)
    assert result.loss.item() <= exhaustive.min().item() * 1.001


def test_uniform_grid_shape_and_search_on_real_weights() -> None:
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    scales, zps = uniform_fpcs_grid(w, 4, granularity=PerChannel(0))
    assert scales.shape == (16, 8) and zps.tolist() == list(range(4, 12))  # 4-bit weights: 8 zp × 16 scales
    lo, hi = w.amin(dim=1), w.amax(dim=1)
    torch.testing.assert_close(scales[-1], (hi - lo) / 15)

    def mse(s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # [N, 8] → [N, 8], one search per output row
        wq = ((torch.round(w[None] / s[..., None]) + z[..., None]).clamp(0, 15) - z[..., None]) * s[..., None]
        return (wq - w[None]).pow(2).mean(dim=2)

    result = fpcs(mse, scales, zps)
    minmax = mse(((hi - lo) / 15)[None], torch.round(-lo / ((hi - lo) / 15))[None])[0]
    assert bool((result.loss < minmax.double()).all())


def test_bad_arguments() -> None:
    with pytest.raises(QuantConfigError):
        FPCSOptions(new_per_survivor=1)
    with pytest.raises(QuantConfigError, match="two coarse scales"):
        fpcs(lambda s, a: s, torch.tensor([1.0]), torch.tensor([0.0]))
    with pytest.raises(QuantConfigError, match="grid"):
        fpcs(lambda s, a: s, torch.ones(3, 2, 2), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="objective returned"):
        fpcs(lambda s, a: s[:2], torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]))
