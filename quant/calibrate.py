"""Choose every quantization point's parameters from the captured samples: the table a config produces.

Where each quantizer goes (issue 7 item 3, §4.3): every Conv2d/Linear weight per output channel; every
Conv2d/Linear input; both MatMul inputs (``matmul_granularity``: per head = PerChannel(1) of [B, heads, N, d]);
MatMul input A after a Softmax with the plan's softmax quantizer (``attn_bits``); a Conv/Linear input after a GELU
with the plan's post-GELU quantizer. First and last Conv/Linear at ``first_last_bits``.
RepQ-ViT's post-LayerNorm per-channel → per-tensor reparameterization (§4.3) does not apply: TopFormer and CAS-ViT
have no LayerNorm (their norms are BatchNorm, folded into convs at export), so it is not built.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .capture import Captured
from .config import AdaLogConfig, QuantConfig, SULQConfig
from .enums import QuantKind, RangeMethod
from .errors import QuantConfigError
from .fake_quant import can_fold_shift, fake_quantize
from .granularity import PER_TENSOR, Granularity, PerChannel, PerHead, PerTensor
from .layer_search import (
    search_layer_input,
    search_matmul_input,
    search_post_gelu,
    search_softmax_adalog,
    search_weight,
    weight_groups,
)
from .primitives import choose_range, mse_range, qparams_from_range, sulq_calibrate
from .search import FPCSOptions
from .sites import Site
from .table import QuantPoint, QuantTable, TensorRole

Progress = Callable[[str, int, int], None]
_MIN_SCALE = 1e-8
_RANGE_ELEMENTS = 1 << 16  # values per tensor for the MSE range search
_MSE_CANDIDATES = 40  # clipping ratios tried by the MSE range search
OBJECTIVE_ELEMENTS = 1 << 13  # patch elements (rows × K) per candidate in the FPCS activation objective
MATMUL_OBJECTIVE_ELEMENTS = 1 << 17  # MatMul output elements per candidate in the FPCS / AdaLog q objective


@dataclass(frozen=True)
class Plan:
    """What a config puts where: the handler of each config builds one (``handlers.py``)."""

    softmax_kind: QuantKind  # UNIFORM_ASYM, LOG2, ADALOG or SULQ
    gelu_kind: QuantKind | None  # ADALOG, LOG2, or None (= the layer's ordinary input quantizer)
    search: bool  # FPCS with the layer-output MSE for weights and inputs (AdaLog)
    symmetric_weights: bool = False
    symmetric_acts: bool = False


def check_paths(config: QuantConfig, sites: list[Site]) -> None:
    """A config naming a module that is not a quantization point is a user error, with close matches."""
    known = [s.path for s in sites]
    for path in [p for p, _ in config.overrides] + list(config.skip):
        if path not in known:
            close = difflib.get_close_matches(path, known, n=3)
            raise QuantConfigError(f"{type(config).__name__} names {path!r}, which is not a quantization point",
                                   hint=f"did you mean {', '.join(close)}?" if close else
                                   "points are Conv2d/Linear/MatMul module paths (print the model to list them)")


def _vec(t: torch.Tensor) -> list[float]:
    return t.reshape(-1).clamp(min=_MIN_SCALE).tolist()


def _uniform_point(module: str, role: TensorRole, idx: int, x: torch.Tensor, bits: int, cfg: QuantConfig,
                   granularity: Granularity, symmetric: bool, exact: tuple[float, float] | None = None) -> QuantPoint:
    if cfg.range_method is RangeMethod.MINMAX and exact is not None and isinstance(granularity, PerTensor):
        lo, hi = torch.tensor([exact[0]]), torch.tensor([exact[1]])
    elif cfg.range_method in (RangeMethod.MSE, RangeMethod.FPCS):
        lo, hi = mse_range(_subsample(x, granularity), bits, symmetric=symmetric, granularity=granularity,
                           num_candidates=_MSE_CANDIDATES)
    else:
        lo, hi = choose_range(x, cfg.range_method, bits=bits, symmetric=symmetric, granularity=granularity,
                              pct=cfg.percentile)
    scale, zp = qparams_from_range(lo, hi, bits, symmetric=symmetric)
    kind = QuantKind.UNIFORM_SYM if symmetric else QuantKind.UNIFORM_ASYM
    return QuantPoint(module, role, kind, bits, granularity, _vec(scale), zp.round().to(torch.int64).tolist(), idx)


def _subsample(x: torch.Tensor, granularity: Granularity) -> torch.Tensor:
    """At most ``_RANGE_ELEMENTS`` values per group for the MSE range search (CPU cost; a strided subset of
    an already random sample). Weights (the only per-channel case here) are small and kept whole."""
    if isinstance(granularity, PerTensor) and x.numel() > _RANGE_ELEMENTS:
        flat = x.reshape(-1)
        return flat[:: flat.numel() // _RANGE_ELEMENTS + 1]
    return x


def _bits(site: Site, cfg: QuantConfig, first: str, last: str, default: int) -> int:
    for path, bits in cfg.overrides:
        if path == site.path:
            return bits
    if cfg.first_last_bits is not None and site.path in (first, last):
        return cfg.first_last_bits
    return default


def build_table(sites: list[Site], caps: dict[str, Captured], cfg: QuantConfig, plan: Plan,
                progress: Progress | None = None) -> QuantTable:
    """All points, site by site in execution order."""
    check_paths(cfg, sites)
    layers = [s for s in sites if s.is_layer]
    first, last = (layers[0].path, layers[-1].path) if layers else ("", "")
    table = QuantTable()
    todo = [s for s in sites if s.path not in cfg.skip]
    for k, site in enumerate(todo):
        if site.is_layer:
            for p in _layer_points(site, caps[site.path], cfg, plan, first, last):
                table.add(p)
        elif site.is_matmul and len(caps[site.path].full) == 2:
            for p in _matmul_points(site, caps[site.path], cfg, plan):
                table.add(p)
        if progress:
            progress("search" if plan.search else "ranges", k + 1, len(todo))
    return table


def _layer_points(site: Site, cap: Captured, cfg: QuantConfig, plan: Plan, first: str,
                  last: str) -> list[QuantPoint]:
    m = site.module
    groups = getattr(m, "groups", 1)
    w = m.weight.detach()
    wbits = _bits(site, cfg, first, last, cfg.weight_bits)
    abits = _bits(site, cfg, first, last, cfg.act_bits)
    if isinstance(cfg, AdaLogConfig) and site.path == first and cfg.first_last_bits is None:
        abits = cfg.conv_input_bits  # §4.3: the stem conv input stays 8-bit
    wg = PerChannel(0)
    if plan.search:
        s, z = search_weight(w, cap.patch_rows, groups, wbits, _eq_n(cfg), _fpcs(cfg),
                             symmetric=plan.symmetric_weights)
        kind = QuantKind.UNIFORM_SYM if plan.symmetric_weights else QuantKind.UNIFORM_ASYM
        wp = QuantPoint(site.path, TensorRole.WEIGHT, kind, wbits, wg, _vec(s), z.round().to(torch.int64).tolist())
    else:
        wp = _uniform_point(site.path, TensorRole.WEIGHT, 0, w, wbits, cfg, wg, plan.symmetric_weights)
    wq = fake_quantize(w, wp)
    patches, pixels = cap.patch_rows, cap.pixel_sample(0)
    act_rows = patches[: max(64, OBJECTIVE_ELEMENTS // max(1, patches[0].numel()))]  # rows are already random
    post_gelu = site.producers[:1] == ["gelu"] and plan.gelu_kind is not None
    if post_gelu and plan.gelu_kind is QuantKind.ADALOG:
        assert isinstance(cfg, AdaLogConfig)
        res = search_post_gelu(act_rows, weight_groups(w, groups), weight_groups(wq, groups), pixels, abits,
                               cfg.post_gelu_shift, range(cfg.q_min, cfg.q_max), cfg.eq_n)
        ip = QuantPoint(site.path, TensorRole.GELU_OUT, QuantKind.ADALOG, abits, PER_TENSOR, _vec(res.scale),
                        log_q=int(res.aux.round()), shift=cfg.post_gelu_shift, shift_folded=can_fold_shift(m))
    elif post_gelu:  # log2 on the post-GELU map: scale = its max (negatives go to the zero code)
        ip = QuantPoint(site.path, TensorRole.GELU_OUT, QuantKind.LOG2, abits, PER_TENSOR, [max(cap.hi[0], 1e-8)])
    elif plan.search:
        res = search_layer_input(act_rows, weight_groups(w, groups), weight_groups(wq, groups), pixels, abits,
                                 _eq_n(cfg), _fpcs(cfg))
        ip = QuantPoint(site.path, TensorRole.INPUT, QuantKind.UNIFORM_ASYM, abits, PER_TENSOR, _vec(res.scale),
                        res.aux.round().to(torch.int64).tolist())
    else:
        g = cfg.act_granularity
        if isinstance(g, PerChannel):
            g = PerChannel(1 if isinstance(m, torch.nn.Conv2d) else -1)
        # pixels are [r, C]: per channel of the sample is PerChannel(1); the point keeps the layer's axis
        ip = _uniform_point(site.path, TensorRole.INPUT, 0, pixels, abits, cfg,
                            PerChannel(1) if isinstance(g, PerChannel) else g, plan.symmetric_acts,
                            exact=(cap.lo[0], cap.hi[0]))
        ip.granularity = g
    return [wp, ip]


def _eq_n(cfg: QuantConfig) -> int:
    return cfg.eq_n if isinstance(cfg, AdaLogConfig) else 128


def _fpcs(cfg: QuantConfig) -> FPCSOptions:
    """§4.4 uniform FPCS shape with the config's step count (keep 16, eq_n/16 new scales per survivor)."""
    steps = cfg.fpcs_steps if isinstance(cfg, AdaLogConfig) else 6
    return FPCSOptions(top_k=16, steps=steps, new_per_survivor=max(2, _eq_n(cfg) // 16))


def _matmul_granularity(cfg: QuantConfig, x: torch.Tensor, search: bool) -> Granularity:
    g = cfg.matmul_granularity
    if isinstance(g, PerHead | PerChannel) and x.dim() != 4:
        return PER_TENSOR
    if search and not (isinstance(g, PerChannel) and g.axis % 4 == 1):
        return PER_TENSOR if isinstance(g, PerTensor | PerHead) else g
    return g


def _objective_samples(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evenly spaced calibration samples (dim 0) holding about ``MATMUL_OBJECTIVE_ELEMENTS`` output elements: the
    search objectives of a MatMul cost candidates × outputs, and 32 images of 512² attention are more than the
    choice of a scale needs (ranges and min-max points still see every sample)."""
    per_sample = (a[:1] @ b[:1]).numel()
    step = -(-a.shape[0] * per_sample // MATMUL_OBJECTIVE_ELEMENTS)
    return (a[::step], b[::step]) if step > 1 and a.shape[0] == b.shape[0] else (a, b)


def _matmul_points(site: Site, cap: Captured, cfg: QuantConfig, plan: Plan) -> list[QuantPoint]:
    a, b = cap.full_input(0), cap.full_input(1)
    if plan.search:
        a, b = _objective_samples(a, b)
    path, bits = site.path, _bits(site, cfg, "", "", cfg.act_bits)
    softmax = site.producers[:1] == ["softmax"]
    ga, gb = _matmul_granularity(cfg, a, plan.search), _matmul_granularity(cfg, b, plan.search)

    def uniform(which: int, other_q: torch.Tensor | None) -> QuantPoint:
        x, g = (a, ga) if which == 0 else (b, gb)
        if plan.search:
            lhs, rhs = (a, b if other_q is None else other_q) if which == 0 else \
                (a if other_q is None else other_q, b)
            s, z = search_matmul_input(lhs, rhs, which, bits, g, _eq_n(cfg), _fpcs(cfg))
            return QuantPoint(path, TensorRole.INPUT, QuantKind.UNIFORM_ASYM, bits, g, _vec(s),
                              z.round().to(torch.int64).tolist(), which)
        return _uniform_point(path, TensorRole.INPUT, which, x, bits, cfg, g, plan.symmetric_acts,
                              exact=(cap.lo[which], cap.hi[which]))

    if not softmax:
        pa = uniform(0, None)
        return [pa, uniform(1, fake_quantize(a, pa))]
    pb = uniform(1, None)
    sbits = _bits(site, cfg, "", "", cfg.attn_bits)
    kind = plan.softmax_kind
    if kind is QuantKind.ADALOG:
        assert isinstance(cfg, AdaLogConfig)
        q = search_softmax_adalog(a, fake_quantize(b, pb), sbits, range(cfg.q_min, cfg.q_max))
        pa = QuantPoint(path, TensorRole.SOFTMAX, kind, sbits, PER_TENSOR, [1.0], log_q=q)
    elif kind is QuantKind.LOG2:
        pa = QuantPoint(path, TensorRole.SOFTMAX, kind, sbits, PER_TENSOR, [1.0])
    elif kind is QuantKind.SULQ:
        assert isinstance(cfg, SULQConfig)
        eta, lo, hi = sulq_calibrate(a.reshape(-1)[: 1 << 22], sbits, etas=cfg.etas)
        pa = QuantPoint(path, TensorRole.SOFTMAX, kind, sbits, PER_TENSOR, eta=eta, log_min=lo, log_max=hi,
                        sulq_steps=cfg.sulq_steps)
    else:
        pa = _uniform_point(path, TensorRole.SOFTMAX, 0, a, sbits, cfg, PER_TENSOR, False,
                            exact=(cap.lo[0], cap.hi[0]))
    return [pa, pb]
