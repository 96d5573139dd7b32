"""The FPCS layer searches on CNN-shaped data, where §4.4's zero points centred on 2^(B−1) fail: one-weight
depthwise channels and ReLU6 outputs (regression for an 8-bit AdaLog config that scored 6 dB end to end)."""

from __future__ import annotations

import torch

from mobilevit_deploy.quant.layer_search import search_layer_input, search_weight, weight_groups
from mobilevit_deploy.quant.metrics import sqnr_db


def _fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmax: int = 255) -> torch.Tensor:
    return ((torch.round(x / scale) + zp).clamp(0, qmax) - zp) * scale


def test_one_weight_per_channel_is_represented_exactly() -> None:
    w = torch.tensor([0.3, -0.2, 0.05, 1.2]).reshape(4, 1, 1, 1)  # a depthwise 1×1 conv
    patches = torch.randn(64, 4, 1, generator=torch.Generator().manual_seed(0))  # [rows, groups, K]
    scale, zp = search_weight(w, patches, groups=4, bits=8, eq_n=128)
    wq = _fake_quant(w.reshape(4, 1), scale[:, None], zp[:, None])
    torch.testing.assert_close(wq, w.reshape(4, 1), rtol=0, atol=1e-6)


def test_skewed_weight_channels_keep_their_range() -> None:
    gen = torch.Generator().manual_seed(1)
    w = (torch.rand(8, 16, 3, 3, generator=gen) * 0.9 - 0.1)  # every channel spans [-0.1, 0.8]
    patches = torch.randn(256, 1, 144, generator=gen)
    scale, zp = search_weight(w, patches, groups=1, bits=8, eq_n=128)
    w2 = w.reshape(8, -1)
    assert sqnr_db(w2, _fake_quant(w2, scale[:, None], zp[:, None])) > 40


def test_relu6_input_uses_the_whole_code_range() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(512, 1, 32, generator=gen) * 6.0  # ReLU6 outputs: all in [0, 6]
    w = torch.randn(8, 32, generator=gen) / 32**0.5
    w_g = weight_groups(w, 1)
    res = search_layer_input(x, w_g, w_g, x.reshape(-1), bits=8, eq_n=128)
    assert float(res.aux) <= 8  # the natural zero point of a non-negative input is ~0, not ~128
    xq = _fake_quant(x, res.scale, res.aux)
    assert sqnr_db(x, xq) > 40
