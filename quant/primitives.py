"""Pure quantization functions on tensors: uniform, log2, AdaLog (§4.2) and SULQ (§5.1); no modules, no state.

Sections (§) refer to ``reference/models_and_quantizers.md``. Every quantizer comes as a pair: ``quantize_*``
returns the integer indices an exporter emits (``torch.int32``) and ``dequantize_*`` maps those indices back to
float, so fake-quant = ``dequantize(quantize(x))`` and the deployed integers are the same integers by construction.

Rounding is ``torch.round`` (half to even) everywhere, as in the official AdaLog and I&S-ViT code.
Log-domain quantizers (log2, AdaLog) cannot encode zero in B bits: inputs whose index would be ≥ 2^B are set to
zero (§4.2 "mask"), and ``quantize_*`` returns the extra code ``log_zero_code(bits) = 2^B`` for them, which
``dequantize_*`` maps to 0. A strictly B-bit kernel must therefore reserve one code for zero.

Log-domain indices are exact, not ``round(log2(·))`` as computed by one library: ``log2`` is not correctly rounded,
so torch, ONNX Runtime and TVM disagree in the last ulp and, about once in 10^6 inputs, on the index. The index is
therefore defined by *decision thresholds* (``adalog_thresholds``, ``sulq_thresholds``: the level boundaries
computed in float64, rounded towards the side they belong to): ``round(log2(·))`` gives a first guess and one
comparison with each neighbouring threshold corrects it. Any runtime that evaluates the same two comparisons with
the same constants gets the same indices, whatever its ``log`` and ``round``.
"""

from __future__ import annotations

import functools
import math

import torch

from .enums import RangeMethod, SULQSteps
from .errors import QuantConfigError
from .granularity import PER_TENSOR, Granularity, broadcast_param, group_view

INDEX_DTYPE = torch.int32
ADALOG_R = 37  # fixed denominator of AdaLog's base 2^(q/r) (§4.2)
SULQ_ETAS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.5, 1.0)  # η candidates of the official init
_LOG_CLAMP_MIN = 1e-15  # §4.2: x/scale is clamped to [1e-15, 1] before log2
_MAX_SEARCH_ELEMENTS = 1 << 24  # memory bound for vectorized candidate searches
_NEAR_HALF = 1e-3  # log levels closer than this to a rounding boundary are checked against the thresholds


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise QuantConfigError(f"bit width must be an int in 2..8, got {bits!r}")


# ----------------------------------------------------------------------------------------------- uniform


def uniform_qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer range: asymmetric [0, 2^B − 1] (unsigned + zero point, AdaLog/I&S-ViT convention); symmetric
    [−(2^(B−1) − 1), 2^(B−1) − 1] (narrow, so the grid is symmetric about 0 as in int8 weight kernels)."""
    _check_bits(bits)
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def quantize_uniform(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | float, bits: int, *,
                     symmetric: bool, granularity: Granularity = PER_TENSOR) -> torch.Tensor:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)`` as int32 (zero_point must be 0 when symmetric)."""
    qmin, qmax = uniform_qrange(bits, symmetric)
    s = broadcast_param(scale, granularity, x).to(x.dtype)
    z = broadcast_param(zero_point, granularity, x).to(x.dtype)
    return (torch.round(x / s) + z).clamp(qmin, qmax).to(INDEX_DTYPE)


def dequantize_uniform(q: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | float, *,
                       granularity: Granularity = PER_TENSOR, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(q − zero_point) · scale``."""
    s = broadcast_param(scale, granularity, q).to(dtype)
    z = broadcast_param(zero_point, granularity, q).to(dtype)
    return (q.to(dtype) - z) * s


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int, *,
                       symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero_point) covering [lo, hi] per group. The range is widened to contain 0 so that zero (padding,
    ReLU output) is exact; a zero-width range gets the smallest normal scale instead of dividing by zero."""
    qmin, qmax = uniform_qrange(bits, symmetric)
    lo = torch.minimum(lo, torch.zeros_like(lo))
    hi = torch.maximum(hi, torch.zeros_like(hi))
    eps = torch.finfo(lo.dtype if lo.is_floating_point() else torch.float32).eps
    if symmetric:
        scale = (torch.maximum(-lo, hi) / qmax).clamp(min=eps)
        return scale, torch.zeros_like(scale)
    scale = ((hi - lo) / (qmax - qmin)).clamp(min=eps)
    zero_point = torch.round(-lo / scale).clamp(qmin, qmax)
    return scale, zero_point


def _fake_quant_uniform(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int,
                        qmax: int) -> torch.Tensor:
    return ((torch.round(x / scale) + zero_point).clamp(qmin, qmax) - zero_point) * scale


# ------------------------------------------------------------------------------------------ range choosers


def minmax_range(x: torch.Tensor, granularity: Granularity = PER_TENSOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group (min, max), each of shape [groups]."""
    g = group_view(x, granularity)
    return g.amin(dim=1), g.amax(dim=1)


def _quantile_rows(g: torch.Tensor, pct: float) -> torch.Tensor:
    """Linear-interpolated quantile of each row (= ``torch.quantile``, without its 2^24-element limit)."""
    s, _ = torch.sort(g, dim=1)
    pos = pct * (s.shape[1] - 1)
    lo_i = math.floor(pos)
    frac = pos - lo_i
    hi_i = min(lo_i + 1, s.shape[1] - 1)
    return s[:, lo_i] + (s[:, hi_i] - s[:, lo_i]) * frac


def percentile_range(x: torch.Tensor, granularity: Granularity = PER_TENSOR, *,
                     pct: float = 0.9999) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group (quantile(1 − pct), quantile(pct)): clips rare outliers (RepQ-ViT / I&S-ViT style)."""
    if not 0.5 <= pct <= 1.0:
        raise QuantConfigError(f"percentile must be in [0.5, 1], got {pct}")
    g = group_view(x, granularity)
    return _quantile_rows(g, 1.0 - pct), _quantile_rows(g, pct)


def mse_range(x: torch.Tensor, bits: int, *, symmetric: bool, granularity: Granularity = PER_TENSOR,
              num_candidates: int = 100, min_ratio: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group range minimising ‖x − fakequant(x)‖² over the min-max range shrunk by α ∈ [min_ratio, 1]
    (``num_candidates`` values); all candidates are evaluated at once, chunked to bound memory."""
    qmin, qmax = uniform_qrange(bits, symmetric)
    g = group_view(x, granularity)
    lo, hi = g.amin(dim=1), g.amax(dim=1)
    alphas = torch.linspace(min_ratio, 1.0, num_candidates, dtype=g.dtype, device=g.device)
    chunk = max(1, _MAX_SEARCH_ELEMENTS // max(1, g.numel()))
    errors = []
    for start in range(0, num_candidates, chunk):
        a = alphas[start:start + chunk, None]  # [n, 1]
        scale, zp = qparams_from_range(a * lo, a * hi, bits, symmetric=symmetric)  # [n, G]
        deq = _fake_quant_uniform(g[None], scale[..., None], zp[..., None], qmin, qmax)
        errors.append((deq - g[None]).pow(2).sum(dim=2))
    best = torch.cat(errors).argmin(dim=0)  # [G]
    return alphas[best] * lo, alphas[best] * hi


def choose_range(x: torch.Tensor, method: RangeMethod, *, bits: int, symmetric: bool,
                 granularity: Granularity = PER_TENSOR, pct: float = 0.9999) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on ``RangeMethod``; FPCS needs a layer objective and lives in ``search.fpcs``."""
    if method is RangeMethod.MINMAX:
        return minmax_range(x, granularity)
    if method is RangeMethod.PERCENTILE:
        return percentile_range(x, granularity, pct=pct)
    if method is RangeMethod.MSE:
        return mse_range(x, bits, symmetric=symmetric, granularity=granularity)
    raise QuantConfigError(f"range method {method} cannot be chosen from the tensor alone",
                           hint="FPCS runs during calibration with a layer objective (quant.search.fpcs)")


# ---------------------------------------------------------------------------------------------- log2


def log_zero_code(bits: int) -> int:
    """The extra index ``2^B`` that log-domain quantizers return for values that dequantize to zero."""
    _check_bits(bits)
    return 2**bits


def quantize_log2(x: torch.Tensor, scale: torch.Tensor | float, bits: int, *,
                  granularity: Granularity = PER_TENSOR) -> torch.Tensor:
    """Index ``round(−log2(clamp(x/scale, 1e-15, 1)))`` (exactly, see the module docstring); indices ≥ 2^B become
    ``log_zero_code`` (official ``Log2Quantizer``; the base-2 special case of AdaLog, q = r)."""
    _check_bits(bits)
    s = broadcast_param(scale, granularity, x).to(x.dtype)
    xs = (x / s).clamp(_LOG_CLAMP_MIN, 1.0)
    return _corrected_log_index(xs, -torch.log2(xs), adalog_thresholds(ADALOG_R, bits, xs.dtype), 2**bits)


def dequantize_log2(idx: torch.Tensor, scale: torch.Tensor | float, bits: int, *,
                    granularity: Granularity = PER_TENSOR, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``2^(−idx) · scale``, 0 for ``log_zero_code``: a pure bit shift on hardware."""
    zero = idx == log_zero_code(bits)
    s = broadcast_param(scale, granularity, idx).to(dtype)
    deq = torch.pow(2.0, -idx.masked_fill(zero, 0).to(dtype)) * s
    return deq.masked_fill(zero, 0.0)


# ------------------------------------------------------------------------- exact log-domain indices (all logs)


def _corrected_log_index(xs: torch.Tensor, level: torch.Tensor, thresholds: torch.Tensor, top: int, *,
                         rows: torch.Tensor | None = None, rising: bool = False,
                         margin: float = _NEAR_HALF) -> torch.Tensor:
    """The exact index from ``level`` (the log level computed with ``torch.log2``, a few ulps off): rounded, then,
    where ``level`` lies within ``margin`` of a rounding boundary (the only places the rounding can be wrong),
    moved one step by comparing xs with the thresholds of the rounded level and of the next one; clipped to
    [0, top]. Thresholds fall with the index (AdaLog, log2: xs ≤ T[k] ⟺ index ≥ k) or, with ``rising``, grow
    with it (SULQ: xs ≥ U[k] ⟺ index ≥ k). ``rows`` picks one threshold row per element when q is a tensor."""
    guess = torch.round(level)
    idx = guess.clamp(0, top).to(torch.int64)
    if level.dtype not in (torch.float32, torch.float64):
        margin = 0.5
    near = ((level - guess).abs() >= 0.5 - margin).nonzero(as_tuple=True)
    if near[0].numel():
        i0 = idx[near]
        flat = i0 if rows is None else rows.expand_as(level)[near] * (top + 2) + i0
        x0 = xs.expand_as(level)[near]
        if rising:
            step = (x0 >= thresholds[flat + 1]).to(torch.int64) - (x0 < thresholds[flat]).to(torch.int64)
        else:
            step = (x0 <= thresholds[flat + 1]).to(torch.int64) - (x0 > thresholds[flat]).to(torch.int64)
        idx[near] = i0 + step
    return idx.clamp(0, top).to(INDEX_DTYPE)


@functools.lru_cache(maxsize=512)
def _adalog_thresholds_f64(q: int, bits: int) -> tuple[float, ...]:
    return tuple(2.0 ** (-(k - 0.5) * q / ADALOG_R) for k in range(1, 2**bits + 1))


def _round_towards(values: torch.Tensor, dtype: torch.dtype, up: bool) -> torch.Tensor:
    """float64 ``values`` in ``dtype``, rounded up (or down) instead of to nearest, so a comparison of a ``dtype``
    input with the rounded threshold decides as the comparison with the float64 one would."""
    out = values.to(dtype)
    wrong = out.double() < values if up else out.double() > values
    step = torch.full_like(out, math.inf if up else -math.inf)
    return torch.where(wrong, torch.nextafter(out, step), out)


def adalog_thresholds(q: int, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """AdaLog (and log2, q = r) decision thresholds, length 2^B + 2: ``T[k]`` for 1 ≤ k ≤ 2^B is 2^(−(k − ½)·q/r)
    rounded down to ``dtype``, so that ``x/scale ≤ T[k]`` ⟺ index ≥ k; ``T[0] = +inf`` and ``T[2^B + 1] = 0``
    are sentinels for the correction step (``_corrected_log_index``). Exporters emit this table as a constant."""
    _check_bits(bits)
    _check_q(q)
    inner = _round_towards(torch.tensor(_adalog_thresholds_f64(int(q), bits), dtype=torch.float64), dtype, up=False)
    return torch.cat([torch.tensor([math.inf], dtype=dtype), inner, torch.zeros(1, dtype=dtype)])


def _adalog_threshold_rows(q: torch.Tensor, bits: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Thresholds of every distinct q in a candidate tensor, flattened, and each element's row."""
    qi = q.to(torch.int64)
    distinct = torch.unique(qi)
    table = torch.cat([adalog_thresholds(int(v), bits, dtype) for v in distinct.tolist()])
    return table, torch.searchsorted(distinct, qi)


# -------------------------------------------------------------------------------------------- AdaLog (§4.2)


def _check_q(q: int | torch.Tensor) -> None:
    if isinstance(q, torch.Tensor):
        if q.is_floating_point() and not torch.equal(q, torch.round(q)):
            raise QuantConfigError("AdaLog q must hold integers")
        if bool((q <= 0).any()):
            raise QuantConfigError("AdaLog q must be positive")
    elif isinstance(q, bool) or not isinstance(q, int) or q <= 0:
        raise QuantConfigError(f"AdaLog q must be a positive int, got {q!r}")


def quantize_adalog(x: torch.Tensor, scale: torch.Tensor | float, q: int | torch.Tensor, bits: int, *,
                    granularity: Granularity = PER_TENSOR) -> torch.Tensor:
    """Index ``round(−log2(clamp(x/scale, 1e-15, 1)) · r / q)`` with r = 37, i.e. ``round(−log_b(x/scale))`` for
    base b = 2^(q/r), exactly (decided by ``adalog_thresholds``, see the module docstring); indices ≥ 2^B become
    ``log_zero_code`` (§4.2: overflow goes to zero, it is not clamped). ``q`` may be a tensor broadcastable to
    ``x`` (one q per candidate in a vectorized search)."""
    _check_bits(bits)
    _check_q(q)
    s = broadcast_param(scale, granularity, x).to(x.dtype)
    qf = q.to(x.dtype) if isinstance(q, torch.Tensor) else float(q)
    xs = (x / s).clamp(_LOG_CLAMP_MIN, 1.0)
    level = -torch.log2(xs) * float(ADALOG_R) / qf
    if isinstance(q, torch.Tensor):
        table, rows = _adalog_threshold_rows(q, bits, xs.dtype)
        return _corrected_log_index(xs, level, table, 2**bits, rows=rows)
    return _corrected_log_index(xs, level, adalog_thresholds(q, bits, xs.dtype), 2**bits)


def adalog_mantissa_denominator(bits: int) -> int:
    """2^(B+1) − 2 (= 4·n_levels − 2 in the official code): the fixed-point denominator of the mantissa LUT."""
    _check_bits(bits)
    return 2 ** (bits + 1) - 2


def _adalog_residue_numerators(bits: int) -> list[int]:
    """round(2^(−j/r) · D) for j in [0, r): the mantissa depends on i only through j = (q·i) mod r."""
    d = adalog_mantissa_denominator(bits)
    return [round(2 ** (-j / ADALOG_R) * d) for j in range(ADALOG_R)]


def adalog_shift_table(q: int, bits: int) -> torch.Tensor:
    """``shift[i] = floor(i·q/r)`` for i in [0, 2^B): the integer right-shift of each index (int64)."""
    _check_bits(bits)
    _check_q(q)
    return torch.tensor([i * q // ADALOG_R for i in range(2**bits)], dtype=torch.int64)


def adalog_mantissa_numerators(q: int, bits: int) -> torch.Tensor:
    """Integer mantissa LUT ``round(2^(−((q·i) mod r)/r) · D)`` (D = 2^(B+1) − 2) for i in [0, 2^B) (int64)."""
    _check_bits(bits)
    _check_q(q)
    res = _adalog_residue_numerators(bits)
    return torch.tensor([res[(q * i) % ADALOG_R] for i in range(2**bits)], dtype=torch.int64)


def adalog_mantissa_table(q: int, bits: int) -> torch.Tensor:
    """Float mantissa LUT = numerators / D, computed in float64 then stored as float32 (as the official buffer)."""
    d = adalog_mantissa_denominator(bits)
    return torch.tensor([n / d for n in adalog_mantissa_numerators(q, bits).tolist()], dtype=torch.float32)


def dequantize_adalog(idx: torch.Tensor, scale: torch.Tensor | float, q: int | torch.Tensor, bits: int, *,
                      granularity: Granularity = PER_TENSOR, exact: bool = False,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hardware path (default): ``2^(−shift[idx]) · mantissa[idx] · scale`` with the §4.2 tables, 0 for
    ``log_zero_code``. ``exact=True`` is the training-mode value ``2^(−idx·q/r) · scale``.

    The tables are evaluated as ``shift = (idx·q) // r`` and ``mantissa = M[(idx·q) mod r]`` in integer
    arithmetic, which equals ``adalog_shift_table`` / ``adalog_mantissa_table`` entry for entry and lets ``q``
    be a tensor of candidates."""
    _check_bits(bits)
    _check_q(q)
    zero = idx == log_zero_code(bits)
    i = idx.masked_fill(zero, 0).to(torch.int64)
    s = broadcast_param(scale, granularity, idx).to(dtype)
    if exact:
        qf = q.to(dtype) if isinstance(q, torch.Tensor) else float(q)
        deq = torch.pow(2.0, (-i.to(dtype) * qf) / float(ADALOG_R)) * s
    else:
        iq = i * (q.to(torch.int64) if isinstance(q, torch.Tensor) else int(q))
        d = adalog_mantissa_denominator(bits)
        lut = torch.tensor([n / d for n in _adalog_residue_numerators(bits)], dtype=torch.float32)
        mant = lut.to(device=idx.device)[iq % ADALOG_R].to(dtype)
        deq = torch.pow(2.0, -(iq // ADALOG_R).to(dtype)) * mant * s
    return deq.masked_fill(zero, 0.0)


# ---------------------------------------------------------------------------------------------- SULQ (§5.1)


def sulq_max_index(bits: int, steps: SULQSteps = SULQSteps.PAPER) -> int:
    """Largest index: 2^B − 1 (``PAPER``) or 2^B (``CODE_FORWARD``, so B + 1 bits are needed)."""
    _check_bits(bits)
    return 2**bits - 1 if steps is SULQSteps.PAPER else 2**bits


def sulq_step(log_min: float | torch.Tensor, log_max: float | torch.Tensor, bits: int,
              steps: SULQSteps = SULQSteps.PAPER) -> torch.Tensor:
    """Δ = (max − min)/(2^B − 1) (paper) or (max − min)/2^B (official forward); 1 if the range is empty."""
    delta = (torch.as_tensor(log_max) - torch.as_tensor(log_min)) / sulq_max_index(bits, steps)
    return torch.where(delta > 0, delta, torch.ones_like(delta))


def _sulq_log(x: torch.Tensor, eta: float | torch.Tensor) -> torch.Tensor:
    # values below −η would give log2 of a non-positive number; treat them as −η (the lowest level)
    return torch.log2((x + eta).clamp(min=torch.finfo(x.dtype).tiny))


def quantize_sulq(x: torch.Tensor, eta: float | torch.Tensor, log_min: float | torch.Tensor,
                  log_max: float | torch.Tensor, bits: int, *, steps: SULQSteps = SULQSteps.PAPER) -> torch.Tensor:
    """SULQ index ``clip(round((log2(x + η) − min)/Δ), 0, max_index)``: shift by η, then *uniform* quantization of
    the log2 domain over its calibrated [min, max] (§5.1). ``PAPER`` (default) is the paper's Δ with 2^B − 1
    steps and B-bit indices; ``CODE_FORWARD`` reproduces the official forward (2^B steps, 2^B + 1 levels).
    The index is exact (decided by ``sulq_thresholds``, see the module docstring); the official code computes
    ln(x)/ln(2), which can differ from it in the last ulp."""
    delta = sulq_step(log_min, log_max, bits, steps).to(x.dtype)
    lo = torch.as_tensor(log_min, dtype=x.dtype)
    y = (x + eta).clamp(min=torch.finfo(x.dtype).tiny)
    u = sulq_thresholds(log_min, log_max, bits, steps=steps, dtype=x.dtype)
    # log2's error is absolute (≤ a few ulps of |log2 y| ≤ 150), so in units of Δ it grows as Δ shrinks
    margin = min(0.5, _NEAR_HALF * max(1.0, 1.0 / float(delta.reshape(-1)[0])))
    return _corrected_log_index(y, (torch.log2(y) - lo) / delta, u, sulq_max_index(bits, steps), rising=True,
                                margin=margin)


def sulq_thresholds(log_min: float | torch.Tensor, log_max: float | torch.Tensor, bits: int, *,
                    steps: SULQSteps = SULQSteps.PAPER, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SULQ decision thresholds on y = x + η, length max_index + 2: ``U[k]`` = 2^(min + (k − ½)·Δ) rounded up to
    ``dtype`` (min and Δ as ``quantize_sulq`` uses them, in ``dtype``), so that ``y ≥ U[k]`` ⟺ index ≥ k;
    ``U[0] = 0`` and ``U[max_index + 1] = +inf`` are sentinels for the one-step correction."""
    delta = float(sulq_step(log_min, log_max, bits, steps).to(dtype))
    lo = float(torch.as_tensor(log_min, dtype=dtype))
    top = sulq_max_index(bits, steps)
    inner = torch.tensor([2.0 ** (lo + (k - 0.5) * delta) for k in range(1, top + 1)], dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=dtype), _round_towards(inner, dtype, up=True),
                      torch.tensor([math.inf], dtype=dtype)])


def sulq_exponents(idx: torch.Tensor, log_min: float | torch.Tensor, log_max: float | torch.Tensor, bits: int, *,
                   steps: SULQSteps = SULQSteps.PAPER, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer power-of-two exponent of each index, ``round(idx·Δ + min)`` (int32): the LUT a kernel needs."""
    delta = sulq_step(log_min, log_max, bits, steps).to(dtype)
    return torch.round(idx.to(dtype) * delta + torch.as_tensor(log_min, dtype=dtype)).to(INDEX_DTYPE)


def dequantize_sulq(idx: torch.Tensor, eta: float | torch.Tensor, log_min: float | torch.Tensor,
                    log_max: float | torch.Tensor, bits: int, *, steps: SULQSteps = SULQSteps.PAPER,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``2^round(idx·Δ + min) − η``: power-of-two reconstruction (§5.1)."""
    e = sulq_exponents(idx, log_min, log_max, bits, steps=steps, dtype=dtype)
    return torch.pow(2.0, e.to(dtype)) - torch.as_tensor(eta, dtype=dtype)


def sulq_calibrate(x: torch.Tensor, bits: int, *,
                   etas: tuple[float, ...] = SULQ_ETAS) -> tuple[float, float, float]:
    """(η, min, max) as the official init: for each η, min/max of log2(x + η) and the reconstruction with the
    paper's 2^B − 1 steps; keep the η with the least ‖x − x̂‖² (first one on ties). The official code uses this
    calibration whatever step count its forward uses, so this function has no ``steps`` option."""
    _check_bits(bits)
    if not etas:
        raise QuantConfigError("SULQ needs at least one η candidate")
    xf = x.detach().reshape(-1)
    best: tuple[float, float, float] | None = None
    best_err = math.inf
    for eta in etas:
        y = _sulq_log(xf, eta)
        lo, hi = y.min(), y.max()
        idx = quantize_sulq(xf, eta, lo, hi, bits, steps=SULQSteps.PAPER)
        err = float((dequantize_sulq(idx, eta, lo, hi, bits, dtype=xf.dtype) - xf).pow(2).sum())
        if err < best_err:
            best_err, best = err, (float(eta), float(lo), float(hi))
    if best is None:  # every candidate gave nan (non-finite input)
        raise QuantConfigError("SULQ calibration data is not finite")
    return best
