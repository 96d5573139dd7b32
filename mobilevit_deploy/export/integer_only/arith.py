"""Exact integer arithmetic as ONNX ops that ONNX Runtime and TVM's Relax frontend both run with integer semantics:
floor division, rounding divisions and shifts, dyadic requantization (twins of ``quant.ivit._int`` / ``dyadic``).

What the runtimes give (probed on onnxruntime 1.31 and apache-tvm 0.27, kept true by
``tests/export/test_integer_ops.py``): integer ``Div`` truncates toward zero in both, ``Mod`` (fmod=0) is the
floor modulo in both, ``BitShift`` exists for unsigned types only, integer ``Pow`` does not import into TVM. So

* ⌊a / d⌋ = ``Div(a − Mod(a, d), d)``: the subtraction makes the division exact, where truncation and flooring
  agree, for either sign of a and d;
* an arithmetic shift a >> k is ⌊a / 2^k⌋ with a constant 2^k; a left shift is a product with 2^k looked up by
  ``Gather`` in a 63-entry table when k is computed;
* round(a / d) with ties to even is q + [2r + (q & 1) > d] with q = ⌊a / d⌋, r = a − q·d: for r < d/2 the sum
  stays ≤ d, for r > d/2 it exceeds d, at r = d/2 it exceeds d exactly when q is odd;
* minimum, maximum and clamp are ``Where(Less(a, b), a, b)``: ONNX Runtime 1.31's int64 ``Min``, ``Max`` and
  ``Clip`` are wrong on x86-64 when the operands' low 32-bit words have the top bit set (measured 2.5 % wrong on
  random values in ±2^40, none inside the int32 range; also reported as an ndonnx workaround, Quantco/ndonnx#154).
"""

from __future__ import annotations

import numpy as np
import torch

from mobilevit_deploy.quant.ivit import Dyadic
from mobilevit_deploy.quant.ivit._int import MAX_SHIFT
from mobilevit_deploy.quant.ivit._int import round_shift as torch_round_shift
from mobilevit_deploy.quant.ivit.dyadic import qrange, storage_dtype

from .graph import GraphBuilder

I64 = np.int64
POW2 = np.left_shift(np.int64(1), np.arange(MAX_SHIFT + 1, dtype=np.int64))  # 2^0 … 2^62
_NUMPY_OF = {torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32}


def numpy_dtype(dtype: torch.dtype) -> type:
    return _NUMPY_OF[dtype]


def storage(bits: int) -> type:
    """The numpy storage type of a ``bits``-bit requantized tensor (as ``quant.ivit.dyadic.storage_dtype``)."""
    return _NUMPY_OF[storage_dtype(bits)]


def to_int64(g: GraphBuilder, x: str) -> str:
    if g.dtype(x).kind not in "iub":
        raise TypeError(f"{x} is {g.dtype(x)}, not an integer tensor")
    return g.cast(x, I64)


def minimum(g: GraphBuilder, a: str, b: str) -> str:
    return g.op("Where", g.op("Less", a, b), a, b)


def maximum(g: GraphBuilder, a: str, b: str) -> str:
    return g.op("Where", g.op("Greater", a, b), a, b)


def clamp(g: GraphBuilder, x: str, lo: int | None, hi: int | None) -> str:
    """min(max(x, lo), hi) on int64 ``x`` with constant bounds (``None``: unbounded on that side)."""
    if lo is not None:
        x = maximum(g, x, g.const(lo, I64))
    if hi is not None:
        x = minimum(g, x, g.const(hi, I64))
    return x


def floor_div(g: GraphBuilder, a: str, d: np.ndarray | int) -> str:
    """⌊a / d⌋ for int64 ``a`` of any sign and a nonzero constant ``d`` (any sign, broadcast over the last dim)."""
    d_name = g.const(d, I64)
    return g.op("Div", g.op("Sub", a, g.op("Mod", a, d_name)), d_name)


def div_nonneg(g: GraphBuilder, a: str, d: str | np.ndarray | int) -> str:
    """⌊a / d⌋ for a ≥ 0 and d > 0, where truncation is flooring: one ``Div``. Callers state why a ≥ 0."""
    return g.op("Div", a, d if isinstance(d, str) else g.const(d, I64))


def round_half_even_div(g: GraphBuilder, a: str, d: np.ndarray | int) -> str:
    """round(a / d), ties to even, for int64 ``a`` and a positive constant ``d`` (``_int.round_half_even_div``)."""
    d_arr = np.asarray(d, dtype=I64)
    if np.all(d_arr == 1):
        return a
    d_name = g.const(d_arr)
    r = g.op("Mod", a, d_name)  # in [0, d)
    q = g.op("Div", g.op("Sub", a, r), d_name)  # exact: ⌊a / d⌋
    odd = g.op("BitwiseAnd", q, g.const(1, I64))
    up = g.op("Greater", g.op("Add", g.op("Add", r, r), odd), d_name)
    return g.op("Add", q, g.cast(up, I64))


def round_shift(g: GraphBuilder, v: str, k: np.ndarray | torch.Tensor) -> str:
    """round(v / 2^k), ties to even (``_int.round_shift``), for int64 ``v`` and constant shifts 0 ≤ k ≤ 62."""
    k_arr = np.asarray(k, dtype=I64)
    if k_arr.size and (k_arr.min() < 0 or k_arr.max() > MAX_SHIFT):
        raise ValueError(f"shifts must be in 0..{MAX_SHIFT}, got {k_arr.min()}..{k_arr.max()}")
    return round_half_even_div(g, v, POW2[k_arr])


def _scaled(g: GraphBuilder, z: str, d: Dyadic) -> str:
    """round(z · m / 2^k): the dyadic rescale before the clamp."""
    return round_shift(g, g.op("Mul", to_int64(g, z), g.const(d.m.numpy(), I64)), d.k.numpy())


def clamp_to(g: GraphBuilder, x: str, bits: int) -> str:
    """Clamp int64 ``x`` to the signed ``bits``-bit range and store it in its storage type."""
    lo, hi = qrange(bits)
    return g.cast(clamp(g, x, lo, hi), storage(bits))


def requantize(g: GraphBuilder, z: str, d: Dyadic, bits: int) -> str:
    """``dyadic.requantize``: clamp(round(z · m / 2^k)) in the ``bits``-bit storage type."""
    return clamp_to(g, _scaled(g, z, d), bits)


def requantize_add(g: GraphBuilder, a: str, da: Dyadic, b: str | torch.Tensor, db: Dyadic, bits: int) -> str:
    """``dyadic.requantize_add``: two rescaled branches added before the clamp. A constant ``b`` (a positional
    embedding, a LayerNorm β) is rescaled now, by the PyTorch kernel itself."""
    if isinstance(b, torch.Tensor):
        scaled_b = torch_round_shift(b.to(torch.int64) * db.m, db.k)
        other = g.const(scaled_b.numpy(), I64)
    else:
        other = _scaled(g, b, db)
    return clamp_to(g, g.op("Add", _scaled(g, a, da), other), bits)
