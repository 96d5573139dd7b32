"""Fake-quant modules: they compute exactly the primitives' dequantize(quantize(x)) and keep the layer's names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilevit_deploy.quant import PerChannel, PerTensor, QuantKind, QuantPoint, SULQSteps, TensorRole
from mobilevit_deploy.quant.fake_quant import (
    ActQuantizer,
    QuantConv2d,
    QuantLinear,
    QuantMatMul,
    can_fold_shift,
    fake_quantize,
)
from mobilevit_deploy.quant.primitives import (
    dequantize_adalog,
    dequantize_sulq,
    quantize_adalog,
    quantize_sulq,
)


def _uniform(module: str, role: TensorRole, n: int, scale: float = 0.05, zp: int = 8, bits: int = 4,
             g=None) -> QuantPoint:
    return QuantPoint(module, role, QuantKind.UNIFORM_ASYM, bits, g or (PerChannel(0) if n > 1 else PerTensor()),
                      [scale] * n, [zp] * n)


def test_adalog_point_matches_primitives() -> None:
    x = torch.rand(2, 3, 5, 5)
    p = QuantPoint("m", TensorRole.SOFTMAX, QuantKind.ADALOG, 4, PerTensor(), [1.0], log_q=20)
    ref = dequantize_adalog(quantize_adalog(x, 1.0, 20, 4), 1.0, 20, 4)
    assert torch.equal(fake_quantize(x, p), ref)


def test_sulq_point_matches_primitives() -> None:
    x = torch.rand(100)
    p = QuantPoint("m", TensorRole.SOFTMAX, QuantKind.SULQ, 4, eta=0.01, log_min=-6.6, log_max=0.01,
                   sulq_steps=SULQSteps.PAPER)
    ref = dequantize_sulq(quantize_sulq(x, 0.01, -6.6, 0.01, 4), 0.01, -6.6, 0.01, 4)
    assert torch.equal(fake_quantize(x, p), ref)


def test_quant_conv_keeps_state_dict_and_quantizes() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    wp = _uniform("c", TensorRole.WEIGHT, 6, scale=0.02)
    ip = _uniform("c", TensorRole.INPUT, 1, scale=0.1)
    q = QuantConv2d.from_float(conv, wp, ip)
    assert q.state_dict().keys() == conv.state_dict().keys()
    x = torch.randn(1, 4, 5, 5)
    step = torch.tensor(0.02) * torch.tensor(0.1)  # the bias is int32 codes of s_w·s_x, as integer kernels add it
    bias = torch.round(conv.bias.detach() / step) * step
    expect = conv._conv_forward(fake_quantize(x, ip), fake_quantize(conv.weight.detach(), wp), bias)
    assert torch.equal(q(x), expect)


def test_quant_linear_and_matmul() -> None:
    lin = nn.Linear(8, 3)
    q = QuantLinear.from_float(lin, _uniform("l", TensorRole.WEIGHT, 3, scale=0.005, zp=128, bits=8), None)
    x = torch.randn(2, 8)
    assert torch.allclose(q(x), lin(x), atol=0.05) and not torch.equal(q(x), lin(x))
    mm = QuantMatMul(_uniform("m", TensorRole.INPUT, 1, 0.1), None)
    a, b = torch.randn(2, 4, 3), torch.randn(2, 3, 5)
    assert torch.equal(mm(a, b), fake_quantize(a, mm.quant_a.point) @ b)
    assert isinstance(mm.quant_a, ActQuantizer)


@pytest.mark.parametrize(("layer", "ok"), [(nn.Conv2d(4, 4, 1), True), (nn.Conv2d(4, 4, 3, padding=1), False),
                                           (nn.Linear(4, 4), True)])
def test_shift_folds_only_where_exact(layer: nn.Module, ok: bool) -> None:
    assert can_fold_shift(layer) is ok


def test_folded_shift_same_output_float64() -> None:
    conv = nn.Conv2d(16, 8, 1).double()
    wp = _uniform("c", TensorRole.WEIGHT, 8, scale=0.01)
    kw = dict(kind=QuantKind.ADALOG, bits=4, granularity=PerTensor(), scale=[3.0], log_q=30, shift=0.17)
    unfolded = QuantConv2d.from_float(conv, wp, QuantPoint("c", TensorRole.GELU_OUT, **kw))
    folded = QuantConv2d.from_float(conv, wp, QuantPoint("c", TensorRole.GELU_OUT, shift_folded=True, **kw))
    x = nn.functional.gelu(torch.randn(2, 16, 4, 4, dtype=torch.float64) * 2)
    assert (folded(x) - unfolded(x)).abs().max() <= 1e-12
