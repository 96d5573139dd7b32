"""Semantic FPN (Kirillov et al. 2019) as mmseg builds it: the ``FPN`` neck and the ``FPNHead`` decode head.

Names follow mmseg (``lateral_convs.i.conv``, ``fpn_convs.i.conv``, ``scale_heads.i.j.conv/bn``, ``conv_seg``)
so mmseg segmentation checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._layers import Add, ConvModule, Resize, SegHead, Upsample2x


class FPN(nn.Module):
    """Lateral 1×1 convs, top-down sum with nearest upsampling, then 3×3 output convs (no norm, no act)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, out_channels, 1, norm=False, act_layer=None) for c in in_channels
        )
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, norm=False, act_layer=None) for _ in in_channels
        )
        self.resizes = nn.ModuleList(Resize("nearest") for _ in in_channels[1:])
        self.adds = nn.ModuleList(Add() for _ in in_channels[1:])

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            prev = laterals[i - 1]
            up = self.resizes[i - 1](laterals[i], (prev.shape[-2], prev.shape[-1]))
            laterals[i - 1] = self.adds[i - 1](prev, up)
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=True)]


class FPNHead(SegHead):
    """Per level: 3×3 ConvModules each followed by a 2× bilinear upsample until stride 4; sum; classify."""

    def __init__(self, in_channels: Sequence[int], feature_strides: Sequence[int], channels: int,
                 num_classes: int, dropout_ratio: float = 0.1) -> None:
        super().__init__(channels, num_classes, dropout_ratio)
        self.scale_heads = nn.ModuleList()
        for i, stride in enumerate(feature_strides):
            length = max(1, int(math.log2(stride) - math.log2(feature_strides[0])))
            layers: list[nn.Module] = []
            for k in range(length):
                layers.append(ConvModule(in_channels[i] if k == 0 else channels, channels, 3, padding=1))
                if stride != feature_strides[0]:
                    layers.append(Upsample2x("bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.resizes = nn.ModuleList(Resize("bilinear", align_corners=False) for _ in feature_strides[1:])
        self.adds = nn.ModuleList(Add() for _ in feature_strides[1:])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](feats[0])
        size = (out.shape[-2], out.shape[-1])
        for i in range(1, len(self.scale_heads)):
            out = self.adds[i - 1](out, self.resizes[i - 1](self.scale_heads[i](feats[i]), size))
        return self.cls_seg(out)
