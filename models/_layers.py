"""Blocks shared by the model families.

Elementwise products, residual adds, matmuls and resizes are modules here (never bare calls inside ``forward``)
so that quantizers and export passes find them by type and module path. Module and child names follow the
official repositories (mmcv's ``ConvModule`` children ``conv``/``bn``/``activate``, TopFormer's ``Conv2d_BN``
children ``c``/``bn``) so official state dicts load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Add(nn.Module):
    """``a + b`` (residual and branch sums)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Mul(nn.Module):
    """``a * b`` (gates and attention-like products)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


class MatMul(nn.Module):
    """``a @ b`` (``q @ k`` and ``attn @ v``)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class Resize(nn.Module):
    """Interpolate to an explicit output size, as mmseg's ``resize`` does (size, never a scale factor)."""

    def __init__(self, mode: str = "bilinear", align_corners: bool | None = False) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = None if mode == "nearest" else align_corners

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class Upsample2x(nn.Module):
    """Double the spatial size (mmseg's ``Upsample(scale_factor=2)`` computes the size, then resizes)."""

    def __init__(self, mode: str = "bilinear", align_corners: bool = False) -> None:
        super().__init__()
        self.resize = Resize(mode, align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(x, (x.shape[-2] * 2, x.shape[-1] * 2))


class HSigmoid(nn.Module):
    """``relu6(x + 3) / 6``, TopFormer's ``h_sigmoid``."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + 3.0) / 6.0  # float literals: int scalars become casts XNNPACK does not take


class DropPath(nn.Module):
    """Stochastic depth for training the demo checkpoints; the identity in eval mode."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvModule(nn.Module):
    """Conv → optional BatchNorm → optional activation, with mmcv's child names (``conv``, ``bn``, ``activate``).

    As in mmcv, the conv has a bias exactly when there is no norm layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        norm: bool = True,
        act_layer: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=not norm
        )
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = act_layer() if act_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class Conv2dBN(nn.Sequential):
    """Bias-free conv followed by BatchNorm: TopFormer's ``Conv2d_BN`` (children ``c`` and ``bn``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                                       bias=False))
        bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class SegHead(nn.Module):
    """The tail every mmseg decode head shares: ``dropout`` (Dropout2d) then the 1×1 classifier ``conv_seg``."""

    def __init__(self, channels: int, num_classes: int, dropout_ratio: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)
