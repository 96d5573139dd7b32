"""Integer layers of the integer-only Segmenter: int8 linear layers with dyadic requantization, the residual add,
and I-LayerNorm followed by its requantization. Buffers are integers; ``from_float`` derives them once.

Conventions (as I-ViT): activations are symmetric per tensor (8 bits, the residual stream 16 bits), weights
symmetric per output channel (8 bits), biases int32 at s_in · s_w. A LayerNorm's γ is folded into its per-channel
requantization (its sign into the integers); β is added in output units, after the dyadic rescale, so a small γ
cannot push ⌊(β/γ) / scale⌋ out of range.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ivit import Dyadic, dyadic_from_ratio, int_layernorm, int_linear, requantize, requantize_add
from ..ivit._int import to_int32
from ..ivit.layernorm import layernorm_output_scale

ACT_BITS = 8
RESIDUAL_BITS = 16
_EPS = 1e-8
ONE = dyadic_from_ratio(1.0)  # m / 2^k = 1 exactly: adds an integer that is already at the output scale


def act_scale(maxabs: float, bits: int) -> float:
    """Symmetric scale covering ±maxabs in 2^(b−1) − 1 steps (official ``symmetric_linear_quantization_params``)."""
    return max(float(maxabs), _EPS) / (2 ** (bits - 1) - 1)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8: (int8 weight, float64 scale per channel)."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    scale = (w.abs().amax(dim=1) / 127).clamp(min=_EPS)
    q = torch.clamp(torch.round(w / scale[:, None]), -128, 127).to(torch.int8)
    return q.reshape(weight.shape), scale


def quantize_constant(value: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    """A float constant (class token, positional or class embedding) as integers at ``scale``."""
    lim = 2 ** (bits - 1)
    q = torch.clamp(torch.round(value.detach().double() / scale), -lim, lim - 1)
    return q.to(torch.int16 if bits <= 16 else torch.int32)


class _DyadicBuffers(nn.Module):
    def _set_dyadic(self, name: str, d: Dyadic) -> None:
        self.register_buffer(f"{name}_m", d.m)
        self.register_buffer(f"{name}_k", d.k)

    def dyadic(self, name: str) -> Dyadic:
        return Dyadic(getattr(self, f"{name}_m"), getattr(self, f"{name}_k"))


class IntLinear(_DyadicBuffers):
    """``requantize(x @ Wᵀ + b)`` per output channel: int8 in, int8 (or int16) out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, out: Dyadic, out_bits: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self._set_dyadic("out", out)
        self.out_bits = out_bits

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, s_in: float,
                   s_out: float | torch.Tensor, out_bits: int = ACT_BITS) -> IntLinear:
        """``weight`` (N, K) as ``nn.Linear``; ``s_out`` per tensor or per output channel."""
        w_q, s_w = quantize_weight(weight)
        b_q = None if bias is None else to_int32(torch.round(bias.detach().double() / (s_in * s_w)).long(), "bias")
        return cls(w_q, b_q, dyadic_from_ratio(s_in * s_w / torch.as_tensor(s_out, dtype=torch.float64)), out_bits)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        return int_linear(x, self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return requantize(self.accumulate(x), self.dyadic("out"), self.out_bits)


class IntResidualLinear(IntLinear):
    """A linear layer whose output joins the residual stream: ``requantize(r · r_ratio + (x @ Wᵀ + b) · ratio)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, out: Dyadic, residual: Dyadic) -> None:
        super().__init__(weight, bias, out, RESIDUAL_BITS)
        self._set_dyadic("residual", residual)

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, s_in: float,  # type: ignore[override]
                   s_res_in: float, s_res_out: float) -> IntResidualLinear:
        plain = IntLinear.from_float(weight, bias, s_in, s_res_out, RESIDUAL_BITS)
        return cls(plain.weight, plain.bias, plain.dyadic("out"), dyadic_from_ratio(s_res_in / s_res_out))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return requantize_add(residual, self.dyadic("residual"), self.accumulate(x), self.dyadic("out"),
                              RESIDUAL_BITS)


class IntNorm(_DyadicBuffers):
    """I-LayerNorm, then γ and the output scale in one per-channel dyadic, then β in output units."""

    def __init__(self, sign: torch.Tensor, out: Dyadic, beta: torch.Tensor, out_bits: int) -> None:
        super().__init__()
        self.register_buffer("sign", sign)
        self._set_dyadic("out", out)
        self.register_buffer("beta", beta)
        self.out_bits = out_bits

    @classmethod
    def from_float(cls, norm: nn.LayerNorm, s_out: float, out_bits: int = ACT_BITS) -> IntNorm:
        gamma, beta = norm.weight.detach().double(), norm.bias.detach().double()
        ratio = layernorm_output_scale(gamma.numel()) * gamma.abs().clamp(min=_EPS) / s_out
        beta_q = to_int32(torch.round(beta / s_out).long(), "LayerNorm β")
        return cls(torch.where(gamma < 0, -1, 1).to(torch.int64), dyadic_from_ratio(ratio), beta_q, out_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = int_layernorm(x) * self.sign
        return requantize_add(y, self.dyadic("out"), self.beta, ONE, self.out_bits)
