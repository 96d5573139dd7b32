"""CAS-ViT segmenters: the ``RCViT`` backbone (``fork_feat``) + Semantic FPN, as in the official mmseg configs.

Official configs ``fpn_rcvit_{xs,s,m,t}_512x512_40k_ade20k_bs4.py``: FPN neck with 256 channels and 4 outputs,
FPNHead with 128 channels, 150 ADE20K classes; logits at stride 4.
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import Task, register_model
from ._semantic_fpn import FPN, FPNHead
from .casvit import _CASVIT_VARIANTS, RCViT

__all__ = ["CasVitSeg", "casvit_m_seg", "casvit_s_seg", "casvit_t_seg", "casvit_xs_seg"]


class CasVitSeg(nn.Module):
    """mmseg ``EncoderDecoder`` layout (``backbone``, ``neck``, ``decode_head``)."""

    def __init__(self, backbone: RCViT, neck: FPN, decode_head: FPNHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.decode_head = decode_head

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's four normed outputs (strides 4, 8, 16, 32)."""
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.neck(self.backbone.forward_features(x)))


def _create_casvit_seg(variant: str, num_classes: int, drop_path_rate: float = 0.0,
                       dropout_ratio: float = 0.1) -> CasVitSeg:
    layers, dims = _CASVIT_VARIANTS[variant]
    backbone = RCViT(layers, dims, drop_path_rate=drop_path_rate, fork_feat=True)
    neck = FPN(dims, 256)
    head = FPNHead([256] * 4, [4, 8, 16, 32], 128, num_classes, dropout_ratio)
    return CasVitSeg(backbone, neck, head)


_INFO = dict(
    family="casvit", task=Task.SEGMENTATION, default_input_size=512, num_classes=150, input_multiple=32,
    output_stride=4, checkpoint_format="mmseg {'state_dict'}: backbone./neck./decode_head.",
    paper="arXiv 2408.03703",
)


@register_model(**_INFO)
def casvit_xs_seg(**kwargs) -> CasVitSeg:
    return _create_casvit_seg("xs", **kwargs)


@register_model(**_INFO)
def casvit_s_seg(**kwargs) -> CasVitSeg:
    return _create_casvit_seg("s", **kwargs)


@register_model(**_INFO)
def casvit_m_seg(**kwargs) -> CasVitSeg:
    return _create_casvit_seg("m", **kwargs)


@register_model(**_INFO)
def casvit_t_seg(**kwargs) -> CasVitSeg:
    return _create_casvit_seg("t", **kwargs)
