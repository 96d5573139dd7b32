"""Symmetric per-channel weights for every config (zero point 0, [−(2^(B−1)−1), 2^(B−1)−1]) and their FPCS search."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilevit_deploy.quant import AdaLogConfig, Log2Config, QuantKind, SULQConfig, TensorRole, UniformConfig
from mobilevit_deploy.quant.api import quantize
from mobilevit_deploy.quant.fake_quant import quantize_point
from mobilevit_deploy.quant.layer_search import search_weight


def _output_objective(w: torch.Tensor, wq: torch.Tensor, patches: torch.Tensor, groups: int) -> torch.Tensor:
    """Per output channel: mean over patch rows of (x·(w_q − w))², plus the search's small weight-MSE tie-break
    (1e-3 · mean input power · ‖w_q − w‖²), computed directly rather than in the search's Gram form."""
    dw = (wq - w).reshape(groups, w.shape[0] // groups, -1)  # [g, O, K]
    x = patches.transpose(0, 1)  # [g, R, K]
    out_err = torch.einsum("grk,gok->gro", x, dw).pow(2).mean(1).reshape(-1)
    ridge = 1e-3 * float(x.pow(2).mean()) + 1e-12
    return out_err + ridge * dw.pow(2).sum(-1).reshape(-1)


def _fq_sym(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    s = scale.reshape(-1, *([1] * (w.dim() - 1)))
    return torch.round(w / s).clamp(-qmax, qmax) * s


@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("groups", [1, 16])
def test_symmetric_search_never_worse_than_minmax(bits: int, groups: int) -> None:
    gen = torch.Generator().manual_seed(bits * 10 + groups)
    cin = 16
    w = torch.randn(32, cin // groups, 3, 3, generator=gen) * torch.rand(32, 1, 1, 1, generator=gen)
    patches = torch.randn(512, groups, cin // groups * 9, generator=gen)
    scale, zp = search_weight(w, patches, groups, bits, eq_n=128, symmetric=True)
    assert torch.equal(zp, torch.zeros(32)) and bool((scale > 0).all())
    qmax = 2 ** (bits - 1) - 1
    minmax = w.reshape(32, -1).abs().amax(1) / qmax
    searched = _output_objective(w, _fq_sym(w, scale, bits), patches, groups)
    baseline = _output_objective(w, _fq_sym(w, minmax, bits), patches, groups)
    assert bool((searched <= baseline * (1 + 1e-5)).all()), "a channel got worse than min-max"
    if bits <= 4:
        # clipping pays at low bits (measured 0.54-0.93 of min-max's error); 8 bits is near min-max anyway
        assert float(searched.sum()) < 0.97 * float(baseline.sum())


def test_every_config_has_symmetric_weights() -> None:
    for cls in (UniformConfig, Log2Config, AdaLogConfig, SULQConfig):
        assert cls().symmetric_weights is False and cls(symmetric_weights=True).to_dict()["symmetric_weights"]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc1, self.gelu, self.fc2 = nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.gelu(self.fc1(self.dw(torch.relu(self.conv(x))).mean((2, 3)))))


@pytest.mark.parametrize("config", [
    AdaLogConfig(weight_bits=4, act_bits=8, symmetric_weights=True, eq_n=32, search_rounds=1, fpcs_steps=2),
    SULQConfig(weight_bits=4, act_bits=8, symmetric_weights=True),
])
def test_quantize_emits_symmetric_weight_points(config: AdaLogConfig | SULQConfig) -> None:
    torch.manual_seed(0)
    net = _Net().eval()
    q = quantize(net, config, torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)))
    weights = [p for p in q.table if p.role is TensorRole.WEIGHT]
    assert len(weights) == 4
    for p in weights:
        assert p.kind is QuantKind.UNIFORM_SYM and p.zero_point == [0] * len(p.scale)
        codes = quantize_point(net.get_submodule(p.module).weight.detach(), p)
        assert int(codes.abs().max()) <= 2 ** (p.bits - 1) - 1
    assert any(p.kind is QuantKind.ADALOG for p in q.table) == isinstance(config, AdaLogConfig)
