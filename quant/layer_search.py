"""FPCS searches of one layer's quantizers with the layer-output MSE objective (§4.3-4.4), batched over candidates.

Objectives compare the layer output under candidate quantizers to the FP output on the captured samples
(``capture.py``): Conv2d/Linear on patch rows ([R, groups, K] @ W_g), MatMul on whole stored inputs. Candidates
are evaluated in chunks of ``_CHUNK`` elements so memory stays bounded at any input size.

* weights (per output channel, asymmetric or symmetric uniform): with FP inputs the per-channel output MSE is the
  quadratic form dwᵀ·G·dw with the patch Gram matrix G = XᵀX, so a candidate costs Cout·K² instead of R·K·Cout.
* activations (per tensor, asymmetric uniform): rows objective with the (already searched) quantized weights.
* AdaLog post-GELU: q pre-filter at a fixed scale, then (scale, q) FPCS with ``ADALOG_FPCS`` (§4.4).
* AdaLog post-Softmax: scale 1, exhaustive q (§4.4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .granularity import PER_TENSOR, Granularity, PerChannel
from .primitives import dequantize_adalog, quantize_adalog, uniform_qrange
from .search import (
    ADALOG_FPCS,
    FPCSOptions,
    FPCSResult,
    Objective,
    anchored_zero_point,
    fpcs,
    prefilter_aux,
    uniform_fpcs_grid,
)

_CHUNK = 1 << 23  # elements of the largest candidate tensor built at once
_DEFAULT_FPCS = FPCSOptions()
_SYM_MIN_RATIO = 0.2  # the symmetric weight grid starts at this fraction of the min-max scale


def _chunked(n: int, per_candidate: int, fn: Callable[[slice], torch.Tensor]) -> torch.Tensor:
    step = max(1, _CHUNK // max(1, per_candidate))
    return torch.cat([fn(slice(i, min(n, i + step))) for i in range(0, n, step)])


def _fq_uniform(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, qmax: int, qmin: int = 0) -> torch.Tensor:
    return ((torch.round(x / s) + z).clamp(qmin, qmax) - z) * s


def grouped_out(x: torch.Tensor, w_g: torch.Tensor) -> torch.Tensor:
    """x [..., R, g, K] · w_g [g, O, K] → [..., R, g, O]."""
    return torch.einsum("...rgk,gok->...rgo", x, w_g)


def weight_groups(w: torch.Tensor, groups: int) -> torch.Tensor:
    """Conv/Linear weight [Cout, ...] as [groups, Cout/groups, K]."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def _weight_objective(w2: torch.Tensor, patches: torch.Tensor, groups: int,
                      fake_quant: Callable[[slice, torch.Tensor, torch.Tensor], torch.Tensor]) -> Objective:
    """Per-channel output MSE of candidate weights on FP patches as the quadratic form dwᵀ·G·dw (G = XᵀX/R);
    ``fake_quant(sl, scale[sl], aux[sl])`` gives the candidates' fake-quant weights [n, Cout, K]."""
    x = patches.transpose(0, 1)  # [g, R, K]
    gram = x.transpose(1, 2) @ x / x.shape[1]  # [g, K, K]
    # tie-break: a small weight-MSE term, so a layer whose sampled inputs are all zero still gets a sane range
    ridge = 1e-3 * float(gram.diagonal(dim1=1, dim2=2).mean()) + 1e-12
    gram = gram + ridge * torch.eye(gram.shape[-1], dtype=gram.dtype)
    opg = w2.shape[0] // groups

    def objective(scale: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        def part(sl: slice) -> torch.Tensor:
            dw = fake_quant(sl, scale[sl], aux[sl]) - w2[None]  # [n, Cout, K]
            dwg = dw.reshape(dw.shape[0], groups, opg, -1)
            return (torch.einsum("ngok,gkj->ngoj", dwg, gram) * dwg).sum(-1).reshape(dw.shape[0], -1)
        return _chunked(scale.shape[0], w2.numel(), part)
    return objective


def search_weight(w: torch.Tensor, patches: torch.Tensor, groups: int, bits: int, eq_n: int,
                  options: FPCSOptions = _DEFAULT_FPCS, *,
                  symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel (scale, zp) minimising the channel's output MSE on FP patches (Gram form): asymmetric
    (scale and zero point searched), or ``symmetric`` (zero point 0, scale only, see ``_search_weight_symmetric``)."""
    if symmetric:
        return _search_weight_symmetric(w, patches, groups, bits, eq_n, options)
    _, qmax = uniform_qrange(bits, symmetric=False)
    w2 = w.detach().reshape(w.shape[0], -1)
    lo = w2.amin(1)  # [Cout]

    def fake_quant(sl: slice, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        zp = anchored_zero_point(lo[None], scale, offset, qmax)
        return _fq_uniform(w2[None], scale[:, :, None], zp[:, :, None], qmax)

    scales, zps = uniform_fpcs_grid(w2, bits, granularity=PerChannel(0), eq_n=eq_n)
    # channels whose [min, max] excludes 0 (e.g. a depthwise 1×1 conv: one weight) get a grid over [min(0, lo),
    # max(0, hi)] instead of a zero-width one
    full = (w2.amax(1).clamp(min=0) - w2.amin(1).clamp(max=0)) / qmax
    narrow = scales[-1] < 0.999 * full
    t = torch.linspace(0.5, 1.0, scales.shape[0], dtype=w2.dtype)[:, None]
    scales = torch.where(narrow[None], t * full[None], scales)
    res = fpcs(_weight_objective(w2, patches, groups, fake_quant), scales, zps - 2 ** (bits - 1), options)
    return res.scale, anchored_zero_point(lo, res.scale, res.aux, qmax)


def _search_weight_symmetric(w: torch.Tensor, patches: torch.Tensor, groups: int, bits: int, eq_n: int,
                             options: FPCSOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale-only FPCS for the symmetric grid (zero point 0, as int8 kernels need): ``eq_n`` coarse scales evenly
    spaced in [0.2, 1]·max|w|/qmax per channel, then the usual refinement. The min-max scale is the top of the
    grid and survivors are kept across rounds, so the result is never worse than min-max on this objective."""
    qmin, qmax = uniform_qrange(bits, symmetric=True)
    w2 = w.detach().reshape(w.shape[0], -1)
    peak = w2.abs().amax(1).clamp(min=torch.finfo(w2.dtype).eps)  # [Cout]

    def fake_quant(sl: slice, scale: torch.Tensor, _zero: torch.Tensor) -> torch.Tensor:
        return _fq_uniform(w2[None], scale[:, :, None], 0.0, qmax, qmin)

    t = torch.linspace(_SYM_MIN_RATIO, 1.0, max(2, eq_n), dtype=w2.dtype)[:, None]
    scales = t * (peak / qmax)[None]
    opts = FPCSOptions(top_k=options.top_k, steps=options.steps, new_per_survivor=options.new_per_survivor,
                       keep_survivors=True, min_scale=options.min_scale)
    res = fpcs(_weight_objective(w2, patches, groups, fake_quant), scales, torch.zeros(1, dtype=w2.dtype), opts)
    return res.scale, torch.zeros_like(res.scale)


def search_layer_input(patches: torch.Tensor, w_g: torch.Tensor, wq_g: torch.Tensor, pixels: torch.Tensor,
                       bits: int, eq_n: int, options: FPCSOptions = _DEFAULT_FPCS) -> FPCSResult:
    """Per-tensor asymmetric (scale, zp) of a Conv/Linear input minimising the output MSE on patch rows."""
    _, qmax = uniform_qrange(bits, symmetric=False)
    ref = grouped_out(patches, w_g)
    lo = pixels.min()

    def objective(scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        s = scale.reshape(-1)
        z = anchored_zero_point(lo, s, offset.reshape(-1), qmax)

        def part(sl: slice) -> torch.Tensor:
            xq = _fq_uniform(patches[None], s[sl, None, None, None], z[sl, None, None, None], qmax)
            return (grouped_out(xq, wq_g) - ref).pow(2).mean(dim=(1, 2, 3))
        return _chunked(s.shape[0], max(patches.numel(), ref.numel()), part)

    scales, zps = uniform_fpcs_grid(pixels.reshape(-1), bits, num_zp=min(16, 2**bits), eq_n=eq_n)
    res = fpcs(objective, scales, zps - 2 ** (bits - 1), options)
    return FPCSResult(res.scale, anchored_zero_point(lo, res.scale, res.aux, qmax), res.loss)


def search_post_gelu(patches: torch.Tensor, w_g: torch.Tensor, wq_g: torch.Tensor, pixels: torch.Tensor, bits: int,
                     shift: float, q_range: range, eq_n: int) -> FPCSResult:
    """AdaLog (scale, q) of a post-GELU input, quantizing x + shift (§4.2, §4.4): q pre-filter keeping 8, 16 scales
    between the 90th and 100th percentile of the positive values (+ shift), then FPCS keeping 32."""
    ref = grouped_out(patches, w_g)
    xs = patches + shift

    def objective(scale: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        s, qq = scale.reshape(-1), q.reshape(-1).round().to(torch.int64)

        def part(sl: slice) -> torch.Tensor:
            sc, qc = s[sl, None, None, None], qq[sl, None, None, None]
            idx = quantize_adalog(xs[None], sc, qc, bits)
            deq = dequantize_adalog(idx, sc, qc, bits, dtype=patches.dtype) - shift
            return (grouped_out(deq, wq_g) - ref).pow(2).mean(dim=(1, 2, 3))
        return _chunked(s.shape[0], max(patches.numel(), ref.numel()), part)

    pos = pixels.reshape(-1)
    pos = pos[pos > 0] if bool((pos > 0).any()) else pos.abs()
    p90, p100 = torch.quantile(pos[:1 << 24].float(), 0.9), pos.max()
    scales = torch.linspace(float(p90), float(p100), 16, dtype=patches.dtype) + shift
    qs = torch.tensor(list(q_range), dtype=patches.dtype)
    top_q = prefilter_aux(objective, qs, scales[-2:-1], keep=8)  # §4.4: q's at the 2nd-largest scale
    opts = FPCSOptions(top_k=ADALOG_FPCS.top_k, steps=ADALOG_FPCS.steps,
                       new_per_survivor=max(2, eq_n // ADALOG_FPCS.top_k))
    return fpcs(objective, scales, top_q, opts)


def search_softmax_adalog(a: torch.Tensor, b_q: torch.Tensor, bits: int, q_range: range) -> int:
    """Post-Softmax AdaLog q with scale 1 (§4.2): exhaustive over ``q_range``, output MSE of ``A @ B``."""
    ref = a @ b_q
    qs = torch.tensor(list(q_range), dtype=torch.int64)

    def part(sl: slice) -> torch.Tensor:
        qc = qs[sl].reshape(-1, *([1] * a.dim()))
        deq = dequantize_adalog(quantize_adalog(a[None], 1.0, qc, bits), 1.0, qc, bits, dtype=a.dtype)
        return (deq @ b_q[None] - ref[None]).pow(2).flatten(1).mean(1)

    loss = _chunked(len(qs), max(a.numel(), ref.numel()), part)
    return int(qs[int(torch.argmin(torch.nan_to_num(loss, nan=float("inf"))))])


def search_matmul_input(a: torch.Tensor, b: torch.Tensor, which: int, bits: int, granularity: Granularity,
                        eq_n: int, options: FPCSOptions = _DEFAULT_FPCS) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric (scale, zp) of MatMul input ``which`` (0 = A, 1 = B), per tensor or per head (PerChannel(1) of a
    [B, heads, ...] tensor), minimising the output MSE of ``A @ B`` with the other input as given."""
    _, qmax = uniform_qrange(bits, symmetric=False)
    x = a if which == 0 else b
    per_head = isinstance(granularity, PerChannel) and granularity.axis % x.dim() == 1 and x.dim() == 4
    g = granularity if per_head else PER_TENSOR
    ref = a @ b
    lo = x.transpose(0, 1).reshape(x.shape[1], -1).amin(1) if per_head else x.min().reshape(1)  # [G]

    def objective(scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        def part(sl: slice) -> torch.Tensor:
            n = scale[sl].shape[0]
            shape = (n, 1, -1, 1, 1) if per_head else (n, 1, 1, 1, 1)
            zp = anchored_zero_point(lo[None], scale[sl], offset[sl], qmax)
            s, z = scale[sl].reshape(shape), zp.reshape(shape)
            xq = _fq_uniform(x[None], s, z, qmax)
            out = xq @ b[None] if which == 0 else a[None] @ xq
            err = (out - ref[None]).pow(2)
            return err.mean(dim=(1, 3, 4)) if per_head else err.flatten(1).mean(1)[:, None]
        return _chunked(scale.shape[0], max(x.numel(), ref.numel()), part)

    scales, zps = uniform_fpcs_grid(x, bits, granularity=g, eq_n=eq_n)
    res = fpcs(objective, scales, zps - 2 ** (bits - 1), options)
    return res.scale, anchored_zero_point(lo, res.scale, res.aux, qmax)
