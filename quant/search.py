"""FPCS — Fast Progressive Combining Search (AdaLog, models_and_quantizers.md §4.4), vectorized over candidates.

A candidate is a pair (scale, aux) where aux is a zero point (uniform) or a log base numerator q (AdaLog). The
search evaluates a coarse grid (every scale × every aux), keeps the ``top_k`` best, then for ``steps − 1`` rounds
replaces each survivor by ``new_per_survivor`` scales spread over ±Δ/2 around it (aux kept), with Δ starting at
the coarse grid step and shrinking by ``new_per_survivor − 0.5`` per round; the last round keeps one.

Everything is batched over *groups* too (G independent searches, e.g. one per output channel of a weight): grids
and losses have shape [N, G]. The objective is user-supplied and batched: ``objective(scale [N, G], aux [N, G])
-> loss [N, G]`` (or [N] when G = 1), lower is better — e.g. the MSE of the layer output (§4.3 uses −MSE as a
similarity; we minimise the MSE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import QuantConfigError
from .granularity import PER_TENSOR, Granularity
from .primitives import minmax_range, percentile_range, uniform_qrange

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FPCSOptions:
    """Search shape. Defaults are the uniform-quantizer setting of §4.4 (eq_n = 128: keep 16, 8 new per survivor,
    6 rounds). ``keep_survivors=False`` follows the official code, whose refinement offsets
    ``linspace(0, 1, n) − 0.5`` exclude 0 for even n, so a survivor is not re-evaluated and the final pick may be
    worse than the best coarse candidate; ``True`` adds the survivors back so the best loss never increases."""

    top_k: int = 16
    steps: int = 6
    new_per_survivor: int = 8
    keep_survivors: bool = False
    min_scale: float = 1e-8  # refined scales are clamped here (the official activation search clamps at 1e-4)

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.steps < 1 or self.new_per_survivor < 2:
            raise QuantConfigError(f"FPCS needs top_k ≥ 1, steps ≥ 1 and new_per_survivor ≥ 2, got {self}")


# §4.4 AdaLog post-GELU search after the q pre-filter: keep 32, 4 new scales per survivor (Δ /= 3.5), 6 rounds.
ADALOG_FPCS = FPCSOptions(top_k=32, steps=6, new_per_survivor=4)


@dataclass(frozen=True)
class FPCSResult:
    """Best candidate per group: ``scale``, ``aux`` and ``loss`` of shape [G] (G = 1 for a per-tensor search)."""

    scale: torch.Tensor
    aux: torch.Tensor
    loss: torch.Tensor


def _as_grid(t: torch.Tensor, groups: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(t)
    if t.dim() == 1:
        return t[:, None].expand(-1, groups)
    if t.dim() == 2 and t.shape[1] in (1, groups):
        return t.expand(-1, groups)
    raise QuantConfigError(f"FPCS {name} grid must be [n] or [n, groups], got shape {tuple(t.shape)}")


def _evaluate(objective: Objective, scale: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    loss = objective(scale, aux)
    if loss.dim() == 1:
        loss = loss[:, None]
    if loss.shape != scale.shape:
        raise ValueError(f"FPCS objective returned shape {tuple(loss.shape)} for {tuple(scale.shape)} candidates")
    return torch.nan_to_num(loss.to(torch.float64), nan=torch.inf)


def _top(scale: torch.Tensor, aux: torch.Tensor, loss: torch.Tensor,
         k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = min(k, loss.shape[0])
    best = torch.topk(loss, k, dim=0, largest=False, sorted=True).indices  # [k, G]
    return scale.gather(0, best), aux.gather(0, best), loss.gather(0, best)


def prefilter_aux(objective: Objective, aux: torch.Tensor, scale: torch.Tensor, keep: int) -> torch.Tensor:
    """AdaLog's first stage (§4.4): evaluate every aux (q) at one fixed scale per group and keep the ``keep`` best,
    returned as an [keep, G] grid for ``fpcs``."""
    scale = torch.as_tensor(scale).reshape(1, -1)
    groups = scale.shape[1]
    aux_grid = _as_grid(aux, groups, "aux")
    loss = _evaluate(objective, scale.expand(aux_grid.shape[0], groups), aux_grid)
    return _top(aux_grid, aux_grid, loss, keep)[1]


def fpcs(objective: Objective, scales: torch.Tensor, aux: torch.Tensor,
         options: FPCSOptions = FPCSOptions()) -> FPCSResult:
    """Search the coarse grid ``scales`` × ``aux`` (each [n] or [n, G]) then refine scales around the survivors.

    ``scales`` must be sorted ascending and evenly spaced along dim 0 (Δ₀ = scales[1] − scales[0], per group)."""
    scales, aux = torch.as_tensor(scales), torch.as_tensor(aux)
    groups = max(scales.shape[1] if scales.dim() == 2 else 1, aux.shape[1] if aux.dim() == 2 else 1)
    s_grid, a_grid = _as_grid(scales, groups, "scale"), _as_grid(aux, groups, "aux")
    if s_grid.shape[0] < 2:
        raise QuantConfigError("FPCS needs at least two coarse scales (their spacing sets the first Δ)")
    delta = s_grid[1] - s_grid[0]  # [G]
    n_s, n_a = s_grid.shape[0], a_grid.shape[0]
    cand_s = s_grid.repeat(n_a, 1)  # scale varies fastest, as the official grid
    cand_a = a_grid.repeat_interleave(n_s, dim=0)
    loss = _evaluate(objective, cand_s, cand_a)
    keep = 1 if options.steps == 1 else options.top_k
    top_s, top_a, top_l = _top(cand_s, cand_a, loss, keep)
    offsets = torch.linspace(0, 1, options.new_per_survivor, dtype=s_grid.dtype, device=s_grid.device) - 0.5
    for step in range(1, options.steps):
        cand_s = (top_s[:, None, :] + offsets[None, :, None] * delta).reshape(-1, groups).clamp(min=options.min_scale)
        cand_a = top_a.repeat_interleave(options.new_per_survivor, dim=0)
        loss = _evaluate(objective, cand_s, cand_a)
        if options.keep_survivors:
            cand_s, cand_a, loss = torch.cat([cand_s, top_s]), torch.cat([cand_a, top_a]), torch.cat([loss, top_l])
        delta = delta / (options.new_per_survivor - 0.5)
        top_s, top_a, top_l = _top(cand_s, cand_a, loss, 1 if step == options.steps - 1 else options.top_k)
    return FPCSResult(scale=top_s[0], aux=top_a[0], loss=top_l[0])


def anchored_zero_point(lo: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, qmax: int) -> torch.Tensor:
    """``clamp(round(-lo / scale) + offset, 0, qmax)``: a zero point searched as an offset from the one that puts the
    data's minimum at code 0.

    §4.4 centres the zero-point candidates on 2^(B−1), which assumes ranges symmetric about 0 (ViT weights and
    post-LayerNorm activations). CNN weights and ReLU/ReLU6 outputs are not: a ReLU6 output [0, 6] with scale
    6/255 and zero point ~128 clips everything above 3, and a depthwise 1×1 channel (one weight) cannot be
    represented at all. Anchoring the same offsets on the natural zero point keeps the search's breadth and works
    for both. ``lo`` broadcasts against ``scale``.
    """
    return (torch.round(-lo.clamp(max=0) / scale) + offset).clamp(0, qmax)


def uniform_fpcs_grid(x: torch.Tensor, bits: int, *, granularity: Granularity = PER_TENSOR, num_zp: int | None = None,
                      eq_n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """§4.4's coarse grid for an asymmetric uniform quantizer: ``eq_n / num_zp`` scales evenly spaced in
    [q(0.9) − q(0.1), max − min] / (2^B − 1) per group ([n_s, G]) and ``num_zp`` zero points centred on 2^(B−1)
    ([num_zp]). ``num_zp`` defaults to min(16, 2^(B−1)) (weights, matmul inputs); activations use min(16, 2^B)."""
    _, qmax = uniform_qrange(bits, symmetric=False)
    num_zp = num_zp if num_zp is not None else min(16, 2 ** (bits - 1))
    num_scales = eq_n // num_zp
    if num_zp < 1 or num_scales < 2:
        raise QuantConfigError(f"FPCS grid needs num_zp ≥ 1 and eq_n/num_zp ≥ 2, got num_zp={num_zp}, eq_n={eq_n}")
    lo90, hi90 = percentile_range(x, granularity, pct=0.9)
    lo, hi = minmax_range(x, granularity)
    d_min, d_max = hi90 - lo90, hi - lo
    t = torch.linspace(0, 1, num_scales, dtype=x.dtype, device=x.device)[:, None]
    scales = (d_min + t * (d_max - d_min)) / qmax
    centre = 2 ** (bits - 1)
    zps = torch.arange(centre - num_zp // 2, centre + num_zp - num_zp // 2, dtype=x.dtype, device=x.device)
    return scales, zps
