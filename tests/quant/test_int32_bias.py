"""The fake-quant bias is what integer kernels add: int32 codes of s_x·s_w when input and weight are uniform."""

from __future__ import annotations

import torch
from torch import nn

from mobilevit_deploy.quant import PerChannel, PerTensor, QuantKind, QuantPoint, TensorRole
from mobilevit_deploy.quant.fake_quant import QuantConv2d, QuantLinear, bias_scale, quantize_bias


def _weight(n: int, scale: float = 0.02) -> QuantPoint:
    return QuantPoint("l", TensorRole.WEIGHT, QuantKind.UNIFORM_SYM, 8, PerChannel(0),
                      [scale * (1 + i / 10) for i in range(n)], [0] * n)


def _input(scale: float = 0.05) -> QuantPoint:
    return QuantPoint("l", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 8, PerTensor(), [scale], [7])


def test_bias_is_int32_codes_of_input_times_weight_scale() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    q = QuantLinear.from_float(lin, _weight(4), _input())
    step = torch.tensor(_weight(4).scale, dtype=torch.float32) * torch.tensor(0.05, dtype=torch.float32)
    assert torch.equal(bias_scale(_weight(4), _input()), step)
    codes = torch.round(lin.bias.detach() / step).to(torch.int32)
    assert torch.equal(q.bias_codes, codes) and q.bias_codes.dtype == torch.int32
    assert torch.equal(q._bias(), codes.float() * step)
    assert float((q._bias() - lin.bias.detach()).abs().max()) <= float(step.max()) / 2  # half a step at most


def test_bias_stays_float_after_a_log_input_with_the_folded_shift() -> None:
    conv = nn.Conv2d(4, 3, 1)
    gelu = QuantPoint("c", TensorRole.GELU_OUT, QuantKind.ADALOG, 4, PerTensor(), [2.0], log_q=40, shift=0.17,
                      shift_folded=True)
    q = QuantConv2d.from_float(conv, _weight(3), gelu)
    assert bias_scale(_weight(3), gelu) is None and q.bias_codes is None
    assert torch.equal(q._bias(), conv.bias + q.bias_delta)


def test_per_channel_inputs_and_huge_codes_keep_a_float_bias() -> None:
    per_channel = QuantPoint("l", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 8, PerChannel(-1), [0.1] * 6, [0] * 6)
    assert bias_scale(_weight(4), per_channel) is None
    dead = _weight(4, scale=1e-8)  # a channel whose weights were all zero gets the scale floor
    assert quantize_bias(torch.ones(4) * 100, dead, _input(1e-3)) is None  # 1e13 steps do not fit int32
    lin = nn.Linear(6, 4)
    with torch.no_grad():
        lin.bias.fill_(0.5)
    q = QuantLinear.from_float(lin, dead, _input(1e-3))
    assert q.bias_codes is None and torch.equal(q._bias(), lin.bias)
    no_bias = QuantLinear.from_float(nn.Linear(6, 4, bias=False), _weight(4), _input())
    assert no_bias._bias() is None
