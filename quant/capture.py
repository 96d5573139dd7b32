"""Capture each site's FP inputs over the calibration set in a few batched forward passes (issue 7 item 4).

Why samples instead of whole tensors: at 512² with 32 images TopFormer's early inputs are ~130 MB each and the
FPCS objective evaluates hundreds of candidates. A Conv2d/Linear output at one position depends only on the
input patch under its kernel, so we keep ``rows`` random *patches* (output positions drawn uniformly over all
images, seeded) — the layer-output MSE on them is an unbiased estimate of the full one — plus random input pixels
for range statistics and exact running min/max. MatMul inputs (attention, tiny at 1/64 resolution) are kept whole
for the first images up to ``matmul_budget`` elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .sites import Site

Progress = Callable[[str, int, int], None]


@dataclass
class Captured:
    """FP samples of one site's inputs; lists are per input index."""

    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    pixels: list[list[torch.Tensor]] = field(default_factory=list)  # [r, C] value samples
    patches: list[torch.Tensor] = field(default_factory=list)  # conv/linear: [r, groups, K]
    full: list[list[torch.Tensor]] = field(default_factory=list)  # matmul: whole inputs of the first images

    def pixel_sample(self, i: int = 0) -> torch.Tensor:
        return torch.cat(self.pixels[i])

    def full_input(self, i: int) -> torch.Tensor:
        return torch.cat(self.full[i])

    @property
    def patch_rows(self) -> torch.Tensor:
        return torch.cat(self.patches)


def _padding(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return x
        raise NotImplementedError("padding='same' convs are not supported by the patch sampler")
    ph, pw = conv.padding
    if not (ph or pw):
        return x
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, (pw, pw, ph, ph), mode=mode)


def conv_patches(conv: nn.Conv2d, x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` input patches at random output positions, as [n, groups, C/groups·kh·kw] in weight-flattening order."""
    xp = _padding(conv, x)
    b, _, h, w = xp.shape
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    bi = torch.randint(b, (n,), generator=gen)
    oy, ox = torch.randint(ho, (n,), generator=gen), torch.randint(wo, (n,), generator=gen)
    iy = oy[:, None] * sh + torch.arange(kh)[None] * dh  # [n, kh]
    ix = ox[:, None] * sw + torch.arange(kw)[None] * dw  # [n, kw]
    patch = xp[bi[:, None, None], :, iy[:, :, None], ix[:, None, :]]  # [n, kh, kw, C]
    return patch.permute(0, 3, 1, 2).reshape(n, conv.groups, -1)


def random_pixels(x: torch.Tensor, n: int, gen: torch.Generator, channel_axis: int) -> torch.Tensor:
    """``n`` random channel vectors of ``x`` as [n, C] (C = size of ``channel_axis``)."""
    rows = x.movedim(channel_axis, -1).reshape(-1, x.shape[channel_axis])
    return rows[torch.randint(rows.shape[0], (n,), generator=gen)]


def capture(model: nn.Module, sites: list[Site], batches: list[torch.Tensor], *, rows: int = 4096,
            matmul_budget: int = 1 << 21, seed: int = 0, progress: Progress | None = None) -> dict[str, Captured]:
    """Run ``model`` on every batch with pre-hooks on the sites; return their samples keyed by module path."""
    total = sum(int(b.shape[0]) for b in batches)
    gen = torch.Generator().manual_seed(seed)
    out = {s.path: Captured() for s in sites}
    share = [0]  # rows this batch contributes (proportional to its size)

    def hook_for(site: Site):
        cap = out[site.path]

        def hook(_m: nn.Module, inputs: tuple) -> None:
            tensors = [t.detach() for t in inputs if isinstance(t, torch.Tensor)]
            if not cap.lo:
                cap.lo, cap.hi = [math.inf] * len(tensors), [-math.inf] * len(tensors)
                cap.pixels, cap.full = [[] for _ in tensors], [[] for _ in tensors]
            for i, t in enumerate(tensors):
                cap.lo[i], cap.hi[i] = min(cap.lo[i], float(t.min())), max(cap.hi[i], float(t.max()))
            n = share[0]
            if site.is_matmul:
                for i, t in enumerate(tensors):
                    if sum(x.numel() for x in cap.full[i]) < matmul_budget:
                        cap.full[i].append(t.clone())
                    cap.pixels[i].append(t.reshape(-1, 1)[torch.randint(t.numel(), (n,), generator=gen)])
                return
            x = tensors[0]
            if isinstance(site.module, nn.Conv2d):
                cap.patches.append(conv_patches(site.module, x, n, gen))
                cap.pixels[0].append(random_pixels(x, n, gen, 1))
            else:
                r = random_pixels(x, n, gen, x.dim() - 1)
                cap.patches.append(r[:, None, :])
                cap.pixels[0].append(r)
        return hook

    handles = [s.module.register_forward_pre_hook(hook_for(s)) for s in sites]
    try:
        with torch.no_grad():
            for k, batch in enumerate(batches):
                share[0] = max(1, math.ceil(rows * batch.shape[0] / total))
                model(batch)
                if progress:
                    progress("calibration", k + 1, len(batches))
    finally:
        for h in handles:
            h.remove()
    return out


@dataclass
class Calibration:
    """What a handler gets: the sites in execution order, their captured FP samples, and a progress callback."""

    sites: list[Site]
    captured: dict[str, Captured]
    progress: Progress | None = None
