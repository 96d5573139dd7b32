"""The I-ViT kernels as integer ONNX subgraphs, step for step the PyTorch kernels of ``quant.ivit`` (whose docstrings
give the algorithms): shift-exp, Shiftmax, ShiftGELU, I-LayerNorm with the integer Newton square root.

Every tensor is int64 inside a kernel, as in PyTorch. Where an operand is provably nonnegative a plain ``Div`` is
the floor division (noted at each use); elsewhere ``arith.floor_div``. Row sums (``ReduceSum``) stay below 2^41
(Shiftmax: N · |x0| · 2^n ≤ 2^31 by ``fit_shiftmax``; LayerNorm: D · 2^32 for its int16 input), where ONNX Runtime's
int64 ``ReduceSum`` is exact: it loses low bits past 2^53.
"""

from __future__ import annotations

import numpy as np

from mobilevit_deploy.quant.ivit._int import INT32_MAX, MAX_SHIFT
from mobilevit_deploy.quant.ivit.layernorm import NEWTON_INIT, NEWTON_ITERATIONS
from mobilevit_deploy.quant.ivit.shift_exp import check_exp_params
from mobilevit_deploy.quant.ivit.shiftmax import check_output_bits, output_dtype

from .arith import I64, POW2, clamp, div_nonneg, floor_div, minimum, numpy_dtype, round_half_even_div, to_int64
from .graph import GraphBuilder

LIMIT_SHIFTED = np.right_shift(np.int64(INT32_MAX), np.arange(MAX_SHIFT + 1, dtype=np.int64))  # ⌊(2^31−1) / 2^s⌋


def _axes(g: GraphBuilder) -> str:
    return g.const(np.array([-1], dtype=I64))


def _row(g: GraphBuilder, op: str, x: str) -> str:
    """Reduce over the last dim, keeping it (``ReduceMax``/``ReduceSum`` with ``keepdim=True``)."""
    return g.op(op, x, _axes(g), keepdims=1)


def _pow2(g: GraphBuilder, shift: str) -> str:
    """2^shift for int64 shifts in 0..62 (a table lookup: integer ``Pow`` does not import into TVM)."""
    return g.op("Gather", g.const(POW2), shift, axis=0)


def shift_exp(g: GraphBuilder, x: str, x0: int, n: int, *, saturate: bool = False) -> str:
    """``ivit.shift_exp``: e^(x·s) in units of s / 2^n for int64 ``x`` (≤ 0 unless ``saturate``)."""
    check_exp_params(x0, n)
    with g.scope("shift_exp"):
        x = g.op("Sub", g.op("Add", x, floor_div(g, x, 2)), floor_div(g, x, 16))  # x · 1.4375
        x = clamp(g, x, n * x0, None)
        x0_name = g.const(x0, I64)
        r = g.op("Mod", x, x0_name)  # x − q·x0 ∈ (x0, 0]: the floor modulo takes the divisor's sign
        q = g.op("Div", g.op("Sub", x, r), x0_name)  # exact, so ⌊x / x0⌋
        twice = g.op("Sub", r, g.const(2 * x0, I64))  # in (|x0|, 2|x0|]
        shift = g.op("Sub", g.const(n - 1, I64), q)
        halved = div_nonneg(g, twice, 2)  # twice > 0
        shift_ok = clamp(g, shift, 0, MAX_SHIFT)  # a valid table index; the value only matters where shift ≥ 0
        if saturate:  # ``_int.saturating_shl``: min(twice · 2^shift, 2^31 − 1) without overflowing int64
            saturated = g.op("Greater", twice, g.op("Gather", g.const(LIMIT_SHIFTED), shift_ok, axis=0))
            shift_ok = g.op("Where", saturated, g.const(0, I64), shift_ok)
            shifted = g.op("Where", saturated, g.const(INT32_MAX, I64), g.op("Mul", twice, _pow2(g, shift_ok)))
        else:
            shifted = g.op("Mul", twice, _pow2(g, shift_ok))
        return g.op("Where", g.op("Less", shift, g.const(0, I64)), halved, shifted)


def _normalize(g: GraphBuilder, e: str, total: str, bits: int) -> str:
    """⌊e · ⌊(2^31 − 1) / min(total, 2^31 − 1)⌋ / 2^(32 − b)⌋, shared by Shiftmax and ShiftGELU (all ≥ 0)."""
    limit = g.const(INT32_MAX, I64)
    factor = div_nonneg(g, limit, minimum(g, total, limit))  # total ≥ e > 0
    return div_nonneg(g, g.op("Mul", e, factor), 1 << (32 - bits))


def shiftmax(g: GraphBuilder, x: str, x0: int, n: int, bits: int) -> str:
    """``ivit.shiftmax``: integer softmax over the last dim, output scale 1 / 2^(b−1), int8 or int16."""
    check_exp_params(x0, n, "Shiftmax")
    check_output_bits(bits, "Shiftmax")
    with g.scope("shiftmax"):
        x = to_int64(g, x)
        e = shift_exp(g, g.op("Sub", x, _row(g, "ReduceMax", x)), x0, n)
        probs = _normalize(g, e, _row(g, "ReduceSum", e), bits)
        return g.cast(probs, numpy_dtype(output_dtype(bits)))


def shiftgelu(g: GraphBuilder, x: str, x0: int, n: int, bits: int) -> str:
    """``ivit.shiftgelu``: x · σ(1.702 λ x) with σ from two shift-exps, int32 out at scale s / 2^(b−1)."""
    check_exp_params(x0, n, "ShiftGELU")
    check_output_bits(bits, "ShiftGELU")
    with g.scope("shiftgelu"):
        x = to_int64(g, x)
        x_max = _row(g, "ReduceMax", x)
        e1 = shift_exp(g, g.op("Sub", x, x_max), x0, n)
        e2 = shift_exp(g, g.op("Neg", x_max), x0, n, saturate=True)
        sigmoid = _normalize(g, e1, g.op("Add", e1, e2), bits)
        return g.cast(g.op("Mul", x, sigmoid), np.int32)  # |x · σ| ≤ 2^31 − 1 for 8-bit x and b ≤ 16 (see ivit)


def isqrt_newton(g: GraphBuilder, var: str, iterations: int = NEWTON_ITERATIONS, init: int = NEWTON_INIT) -> str:
    """``ivit.isqrt_newton``: k ← ⌊(k + ⌊var / k⌋) / 2⌋ from k = init (var ≥ 0 and k > 0: plain divisions)."""
    with g.scope("isqrt"):
        k = g.const(init, I64)
        for _ in range(iterations):
            k = div_nonneg(g, g.op("Add", k, div_nonneg(g, var, k)), 2)
        return k


def int_layernorm(g: GraphBuilder, x: str, dim: int) -> str:
    """``ivit.int_layernorm`` without bias over the last dim (of size ``dim``): int64 out at scale √D / 2^30."""
    with g.scope("layernorm"):
        x = to_int64(g, x)
        y = g.op("Sub", x, round_half_even_div(g, _row(g, "ReduceSum", x), dim))
        std = isqrt_newton(g, _row(g, "ReduceSum", g.op("Mul", y, y)))
        factor = div_nonneg(g, g.const(INT32_MAX, I64), std)  # std ≥ init / 2^iterations > 0
        return floor_div(g, g.op("Mul", y, factor), 2)


__all__ = ["int_layernorm", "isqrt_newton", "shift_exp", "shiftgelu", "shiftmax"]
