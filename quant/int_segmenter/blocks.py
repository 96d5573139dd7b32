"""The integer transformer block: pre-norm attention with Shiftmax and an MLP with (λ-)ShiftGELU.

Data flow and storage (I-ViT's layout; scales in brackets):
residual r int16 [s_r] → norm1 int8 → qkv int8 [s_q, s_k, s_v] → q @ kᵀ int32 [s_q·s_k] → logits int32 [s_l]
(the attention scale d^−0.5 folded into that requantization) → Shiftmax int16 [2^−15] → p @ v int32 [s_v/2^15]
→ int8 [s_o] → proj + r → int16 [s_r'] → norm2 int8 → fc1 int8 [s_g] → ShiftGELU int32 [s_g/128] → int8 [s_h]
→ fc2 + r' → int16 [s_r''].

The logit scale is s_l = 1 / (|x0| − 0.5) with Shiftmax's (x0, n) searched per layer on calibration logits
(``ivit.fit_shiftmax``): the row sum N · |x0| · 2^n and the precision of ⌊(2^31 − 1) / S⌋ share 31 bits, and
I-ViT's fixed n = 15 would leave almost none for the latter. Probabilities are 16-bit as in I-ViT's PyTorch
model: at 8 bits (1/128, its TVM code) a near-uniform row of more than 128 tokens floors to zero.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ivit import (
    dyadic_from_ratio,
    fit_shiftmax,
    gelu_x0,
    int_matmul,
    int_prob_matmul,
    logit_scale,
    requantize,
    shiftgelu,
    shiftmax,
)
from .layers import ACT_BITS, RESIDUAL_BITS, IntLinear, IntNorm, IntResidualLinear, _DyadicBuffers, act_scale
from .ranges import Ranges

PROB_BITS = 16


class IntBlock(_DyadicBuffers):
    """``r + attn(norm1(r))`` then ``+ mlp(norm2(·))`` on the int16 residual stream."""

    def __init__(self, heads: int, norm1: IntNorm, qkv: IntLinear, logits: torch.Tensor, softmax_x0: int,
                 softmax_n: int, av_scale: torch.Tensor,
                 proj: IntResidualLinear, norm2: IntNorm, fc1: IntLinear, gelu_x0: int, gelu_scale: torch.Tensor,
                 fc2: IntResidualLinear) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.qkv, self.proj, self.norm2, self.fc1, self.fc2 = norm1, qkv, proj, norm2, fc1, fc2
        self.softmax_x0, self.softmax_n, self.gelu_x0 = softmax_x0, softmax_n, gelu_x0
        self._set_dyadic("logits", dyadic_from_ratio(logits))
        self._set_dyadic("av", dyadic_from_ratio(av_scale))
        self._set_dyadic("gelu", dyadic_from_ratio(gelu_scale))

    @classmethod
    def from_float(cls, block: nn.Module, ranges: Ranges, path: str, s_in: float, s_out: float,
                   lam: float = 1.0) -> IntBlock:
        """Integer twin of a float ``Block`` at ``path`` whose residual input/output scales are s_in / s_out."""
        attn, mlp = block.attn, block.mlp
        s_mid = act_scale(ranges[f"{path}.add_attn"], RESIDUAL_BITS)
        s_a = act_scale(ranges[f"{path}.norm1"], ACT_BITS)
        s_q, s_k, s_v = (act_scale(ranges[f"{path}.attn.qkv.{n}"], ACT_BITS) for n in "qkv")
        dim = attn.qkv.in_features
        qkv_out = torch.tensor([s_q] * dim + [s_k] * dim + [s_v] * dim, dtype=torch.float64)
        x0, n = fit_shiftmax(ranges.logit_samples[f"{path}.attn.softmax"], PROB_BITS)
        s_o = act_scale(ranges[f"{path}.attn.matmul_av"], ACT_BITS)
        s_b = act_scale(ranges[f"{path}.norm2"], ACT_BITS)
        s_g = act_scale(ranges[f"{path}.mlp.fc1"], ACT_BITS)
        s_h = act_scale(ranges[f"{path}.mlp.act"], ACT_BITS)
        return cls(
            heads=attn.heads,
            norm1=IntNorm.from_float(block.norm1, s_a),
            qkv=IntLinear.from_float(attn.qkv.weight, attn.qkv.bias, s_a, qkv_out),
            logits=torch.tensor(s_q * s_k * attn.scale / logit_scale(x0), dtype=torch.float64),
            softmax_x0=x0,
            softmax_n=n,
            av_scale=torch.tensor(s_v / 2 ** (PROB_BITS - 1) / s_o, dtype=torch.float64),
            proj=IntResidualLinear.from_float(attn.proj.weight, attn.proj.bias, s_o, s_in, s_mid),
            norm2=IntNorm.from_float(block.norm2, s_b),
            fc1=IntLinear.from_float(mlp.fc1.weight, mlp.fc1.bias, s_b, s_g),
            gelu_x0=gelu_x0(s_g, lam),
            gelu_scale=torch.tensor(s_g / 128 / s_h, dtype=torch.float64),
            fc2=IntResidualLinear.from_float(mlp.fc2.weight, mlp.fc2.bias, s_h, s_mid, s_out),
        )

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        b, n, c = r.shape
        qkv = self.qkv(self.norm1(r)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # B,h,N,d int8
        logits = requantize(int_matmul(q, k.transpose(-2, -1)), self.dyadic("logits"), 32)  # B,h,N,N int32
        p = shiftmax(logits, self.softmax_x0, self.softmax_n, PROB_BITS)  # B,h,N,N int16
        o = int_prob_matmul(p, v).transpose(1, 2).reshape(b, n, c)  # B,N,C int32
        r = self.proj(requantize(o, self.dyadic("av"), ACT_BITS), r)
        h = requantize(shiftgelu(self.fc1(self.norm2(r)), self.gelu_x0), self.dyadic("gelu"), ACT_BITS)
        return self.fc2(h, r)
