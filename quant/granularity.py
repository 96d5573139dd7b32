"""Typed quantization granularity (the torchao pattern: value objects, not strings) and the shape helpers.

Every quantizer parameter (scale, zero point) is a 1-D tensor with one entry per *group*:
``PerTensor`` → 1 group, ``PerChannel(axis)`` → ``x.shape[axis]`` groups, ``PerHead(axis, num_heads)`` →
``num_heads`` groups of contiguous channels along ``axis``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import QuantConfigError


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor: x of shape [B, C, H, W] → scale of shape [1]."""


@dataclass(frozen=True)
class PerChannel:
    """One scale per index along ``axis``: a Linear weight [out, in] with axis 0 → scale [out];
    a conv activation [B, C, H, W] with axis 1 → scale [C] (broadcast as [1, C, 1, 1])."""

    axis: int

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise QuantConfigError(f"PerChannel axis must be an int, got {self.axis!r}")


@dataclass(frozen=True)
class PerHead:
    """One scale per attention head: the ``axis`` dimension (size C) is split into ``num_heads`` contiguous groups
    of C/num_heads channels. q of shape [B, N, C=4·16] with PerHead(axis=2, num_heads=4) → scale [4]; for a
    head-split tensor [B, heads, N, d] use axis=1 (then it equals PerChannel(1))."""

    axis: int
    num_heads: int

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise QuantConfigError(f"PerHead axis must be an int, got {self.axis!r}")
        if isinstance(self.num_heads, bool) or not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise QuantConfigError(f"PerHead num_heads must be a positive int, got {self.num_heads!r}")


Granularity = PerTensor | PerChannel | PerHead
GRANULARITY_TYPES = (PerTensor, PerChannel, PerHead)
PER_TENSOR = PerTensor()  # shared default (granularities are frozen, so one instance is safe)


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise QuantConfigError(f"granularity axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


def num_groups(granularity: Granularity, shape: torch.Size | tuple[int, ...]) -> int:
    """How many (scale, zero point) entries ``granularity`` needs for a tensor of ``shape``."""
    if isinstance(granularity, PerTensor):
        return 1
    size = shape[_axis(granularity.axis, len(shape))]
    if isinstance(granularity, PerChannel):
        return size
    if size % granularity.num_heads:
        raise QuantConfigError(f"PerHead: axis size {size} is not divisible by num_heads={granularity.num_heads}")
    return granularity.num_heads


def group_view(x: torch.Tensor, granularity: Granularity) -> torch.Tensor:
    """``x`` as [groups, elements]: row g holds every element that shares parameter g (for range statistics)."""
    if isinstance(granularity, PerTensor):
        return x.reshape(1, -1)
    groups = num_groups(granularity, x.shape)
    return x.movedim(_axis(granularity.axis, x.dim()), 0).reshape(groups, -1)


def broadcast_param(param: torch.Tensor | float, granularity: Granularity, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-group parameter ([groups] or a scalar) so it broadcasts against ``x``.

    A parameter with as many dims as ``x`` (and ``x.dim() > 1``) is taken as already broadcast and returned
    unchanged: that is how vectorized searches pass one candidate per row, e.g. scales [N, 1] against x [1, M]."""
    p = torch.as_tensor(param, device=x.device)
    if x.dim() > 1 and p.dim() == x.dim():
        return p
    if isinstance(granularity, PerTensor):
        if p.numel() != 1:
            raise QuantConfigError(f"PerTensor expects one parameter value, got {p.numel()}")
        return p.reshape(())
    axis = _axis(granularity.axis, x.dim())
    groups = num_groups(granularity, x.shape)
    p = p.reshape(-1)
    if p.numel() == 1:
        return p.reshape(())
    if p.numel() != groups:
        raise QuantConfigError(f"{granularity} expects {groups} parameter values for shape {tuple(x.shape)}, "
                               f"got {p.numel()}")
    if isinstance(granularity, PerHead):
        p = p.repeat_interleave(x.shape[axis] // groups)
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return p.reshape(shape)
