"""TopFormer: Token Pyramid Transformer for Mobile Semantic Segmentation (CVPR 2022, arXiv 2204.05525).

Matches the official hustvl/TopFormer backbone and SimpleHead (mmseg) so official ADE20K checkpoints load 1:1:
a MobileNetV2-style Token Pyramid Module, pyramid pooling of its four outputs into tokens, four attention blocks
built from Conv2d+BN only, and Semantic Injection Modules ("muli_sum") feeding a SimpleHead at stride 8.

Details that decide numerics (pinned by tests): the attention does *not* apply ``key_dim ** -0.5`` (the official
code defines the scale but never uses it); the TPM activation is ReLU while the transformer uses ReLU6; the head's
fuse conv is depthwise for Tiny only. Pyramid pooling uses fixed ``avg_pool2d`` windows instead of
``adaptive_avg_pool2d`` (identical windows when the input is a multiple of 64; other sizes raise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mobilevit_deploy.errors import InputSizeError

from ._layers import Add, Conv2dBN, ConvModule, DropPath, HSigmoid, MatMul, Mul, Resize, SegHead
from ._registry import Task, register_model

__all__ = ["TopFormerSeg", "topformer_base", "topformer_small", "topformer_tiny"]


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new_value + divisor if new_value < 0.9 * value else new_value


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1×1 expand + act] → k×k depthwise + act → 1×1 linear projection (+ residual)."""

    def __init__(self, inp: int, oup: int, kernel_size: int, stride: int, expand_ratio: int,
                 act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_residual = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [Conv2dBN(inp, hidden, 1), act_layer()]
        layers += [
            Conv2dBN(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden),
            act_layer(),
            Conv2dBN(hidden, oup, 1),
        ]
        self.conv = nn.Sequential(*layers)
        self.add = Add() if self.use_residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(x, self.conv(x)) if self.add is not None else self.conv(x)


class TokenPyramidModule(nn.Module):
    """Stem (3×3 s2) and the rows ``[k, t, c, s]`` of the config; returns the outputs after ``out_indices``."""

    def __init__(self, cfgs: Sequence[Sequence[int]], out_indices: Sequence[int], inp_channel: int = 16) -> None:
        super().__init__()
        self.out_indices = tuple(out_indices)
        self.stem = nn.Sequential(Conv2dBN(3, inp_channel, 3, 2, 1), nn.ReLU())
        self.layer_names: list[str] = []
        for i, (k, t, c, s) in enumerate(cfgs):
            out_channel = _make_divisible(c)
            self.add_module(f"layer{i + 1}", InvertedResidual(inp_channel, out_channel, k, s, t))
            self.layer_names.append(f"layer{i + 1}")
            inp_channel = out_channel

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = self.stem(x)
        for i, name in enumerate(self.layer_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


class Attention(nn.Module):
    """Multi-head attention over a (B, C, H, W) token map with 1×1 Conv2d+BN projections and *no* logit scaling."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float,
                 act_layer: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.to_q = Conv2dBN(dim, key_dim * num_heads, 1)
        self.to_k = Conv2dBN(dim, key_dim * num_heads, 1)
        self.to_v = Conv2dBN(dim, self.value_dim * num_heads, 1)
        self.matmul_qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.matmul_av = MatMul()
        self.proj = nn.Sequential(act_layer(), Conv2dBN(self.value_dim * num_heads, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.to_q(x).reshape(b, self.num_heads, self.key_dim, h * w).permute(0, 1, 3, 2)  # B,nh,N,kd
        k = self.to_k(x).reshape(b, self.num_heads, self.key_dim, h * w)  # B,nh,kd,N
        v = self.to_v(x).reshape(b, self.num_heads, self.value_dim, h * w).permute(0, 1, 3, 2)  # B,nh,N,d
        attn = self.softmax(self.matmul_qk(q, k))  # B,nh,N,N
        out = self.matmul_av(attn, v)  # B,nh,N,d
        out = out.permute(0, 1, 3, 2).reshape(b, self.value_dim * self.num_heads, h, w)
        return self.proj(out)


class Mlp(nn.Module):
    """1×1 Conv2d+BN → 3×3 depthwise conv (bias) → ReLU6 → 1×1 Conv2d+BN."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        self.fc1 = Conv2dBN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=True)
        self.act = act_layer()
        self.fc2 = Conv2dBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Block(nn.Module):
    """``x + attn(x)`` then ``x + mlp(x)``; no LayerNorm (the BNs live inside the convs)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, mlp_ratio: float, attn_ratio: float,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.add_attn = Add()
        self.add_mlp = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_attn(x, self.drop_path(self.attn(x)))
        return self.add_mlp(x, self.drop_path(self.mlp(x)))


class BasicLayer(nn.Module):
    """The semantics extractor: a stack of ``Block``s in ``transformer_blocks`` (official key names)."""

    def __init__(self, depth: int, dim: int, key_dim: int, num_heads: int, mlp_ratio: float, attn_ratio: float,
                 drop_path_rate: float) -> None:
        super().__init__()
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.transformer_blocks = nn.ModuleList(
            Block(dim, key_dim, num_heads, mlp_ratio, attn_ratio, rate) for rate in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.transformer_blocks:
            x = block(x)
        return x


class PyramidPoolAgg(nn.Module):
    """Average-pool every pyramid level to the size of the last one divided by ``stride``, then concatenate.

    The official code uses ``adaptive_avg_pool2d``; when each level's size divides evenly (inputs that are
    multiples of 64) that is exactly a fixed ``avg_pool2d`` window, which every runtime supports.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        h, w = inputs[-1].shape[-2:]
        out_h, out_w = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        pooled = []
        for x in inputs:
            xh, xw = x.shape[-2:]
            if xh % out_h or xw % out_w:
                raise InputSizeError(
                    f"TopFormer's pyramid pooling cannot map a {xh}x{xw} feature map onto {out_h}x{out_w} tokens",
                    hint="use an input size that is a multiple of 64",
                )
            kernel = (xh // out_h, xw // out_w)
            pooled.append(F.avg_pool2d(x, kernel, kernel))
        return torch.cat(pooled, dim=1)


class InjectionMultiSum(nn.Module):
    """Semantic Injection Module ("muli_sum"): ``local * hsigmoid(up(act)) + up(global)``."""

    def __init__(self, inp: int, oup: int) -> None:
        super().__init__()
        self.local_embedding = ConvModule(inp, oup, 1, act_layer=None)
        self.global_embedding = ConvModule(inp, oup, 1, act_layer=None)
        self.global_act = ConvModule(inp, oup, 1, act_layer=None)
        self.act = HSigmoid()
        self.resize_act = Resize("bilinear", align_corners=False)
        self.resize_feat = Resize("bilinear", align_corners=False)
        self.mul = Mul()
        self.add = Add()

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        size = (x_local.shape[-2], x_local.shape[-1])
        local_feat = self.local_embedding(x_local)
        sig_act = self.resize_act(self.act(self.global_act(x_global)), size)
        global_feat = self.resize_feat(self.global_embedding(x_global), size)
        return self.add(self.mul(local_feat, sig_act), global_feat)


class TopFormerBackbone(nn.Module):
    """Official ``Topformer`` backbone: TPM → PPA → transformer → SIM; returns the injected features."""

    def __init__(self, cfgs: Sequence[Sequence[int]], channels: Sequence[int], out_channels: Sequence[int | None],
                 embed_out_indice: Sequence[int], decode_out_indices: Sequence[int] = (1, 2, 3), depths: int = 4,
                 key_dim: int = 16, num_heads: int = 8, attn_ratios: float = 2, mlp_ratios: float = 2,
                 c2t_stride: int = 2, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.channels = list(channels)
        self.decode_out_indices = tuple(decode_out_indices)
        self.tpm = TokenPyramidModule(cfgs, embed_out_indice)
        self.ppa = PyramidPoolAgg(c2t_stride)
        self.trans = BasicLayer(depths, sum(channels), key_dim, num_heads, mlp_ratios, attn_ratios, drop_path_rate)
        self.SIM = nn.ModuleList(
            InjectionMultiSum(channels[i], out_channels[i]) if i in self.decode_out_indices else nn.Identity()
            for i in range(len(channels))
        )

    def forward_pyramid(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The four TPM outputs and the global semantics tokens (before injection)."""
        local = self.tpm(x)
        return local, self.trans(self.ppa(local))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        local, tokens = self.forward_pyramid(x)
        global_parts = tokens.split(self.channels, dim=1)
        return [self.SIM[i](local[i], global_parts[i]) for i in self.decode_out_indices]


class SimpleHead(SegHead):
    """Sum the injected features at the finest scale, fuse with a 1×1 ConvModule, classify (stride 8)."""

    def __init__(self, channels: int, num_classes: int, is_dw: bool, num_inputs: int = 3,
                 dropout_ratio: float = 0.1) -> None:
        super().__init__(channels, num_classes, dropout_ratio)
        self.resizes = nn.ModuleList(Resize("bilinear", align_corners=False) for _ in range(num_inputs - 1))
        self.adds = nn.ModuleList(Add() for _ in range(num_inputs - 1))
        self.linear_fuse = ConvModule(channels, channels, 1, groups=channels if is_dw else 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[0]
        size = (x.shape[-2], x.shape[-1])
        for feat, resize, add in zip(feats[1:], self.resizes, self.adds, strict=True):
            x = add(x, resize(feat, size))
        return self.cls_seg(self.linear_fuse(x))


class TopFormerSeg(nn.Module):
    """mmseg ``EncoderDecoder`` layout (``backbone``, ``decode_head``): logits at 1/8 of the input size."""

    def __init__(self, backbone: TopFormerBackbone, decode_head: SimpleHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four Token Pyramid outputs (strides 4, 8, 16, 32)."""
        return self.backbone.forward_pyramid(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(x))


_TPM_TINY = [[3, 1, 16, 1], [3, 4, 16, 2], [3, 3, 16, 1], [5, 3, 32, 2], [5, 3, 32, 1],
             [3, 3, 64, 2], [3, 3, 64, 1], [5, 6, 96, 2], [5, 6, 96, 1]]
_TPM_SMALL = [[3, 1, 16, 1], [3, 4, 24, 2], [3, 3, 24, 1], [5, 3, 48, 2], [5, 3, 48, 1],
              [3, 3, 96, 2], [3, 3, 96, 1], [5, 6, 128, 2], [5, 6, 128, 1], [3, 6, 128, 1]]
_TPM_BASE = [[3, 1, 16, 1], [3, 4, 32, 2], [3, 3, 32, 1], [5, 3, 64, 2], [5, 3, 64, 1],
             [3, 3, 128, 2], [3, 3, 128, 1], [5, 6, 160, 2], [5, 6, 160, 1], [3, 6, 160, 1]]


def _create_topformer(cfgs: list[list[int]], channels: list[int], embed_out_indice: list[int], num_heads: int,
                      head_channels: int, is_dw: bool, num_classes: int, drop_path_rate: float = 0.0,
                      dropout_ratio: float = 0.1) -> TopFormerSeg:
    backbone = TopFormerBackbone(cfgs, channels, [None] + [head_channels] * 3, embed_out_indice,
                                 num_heads=num_heads, drop_path_rate=drop_path_rate)
    head = SimpleHead(head_channels, num_classes, is_dw, dropout_ratio=dropout_ratio)
    return TopFormerSeg(backbone, head)


_INFO = dict(
    family="topformer", task=Task.SEGMENTATION, default_input_size=512, num_classes=150, input_multiple=64,
    output_stride=8, checkpoint_format="mmseg {'state_dict'}: backbone./decode_head.",
    paper="arXiv 2204.05525",
)


@register_model(**_INFO)
def topformer_tiny(**kwargs) -> TopFormerSeg:
    return _create_topformer(_TPM_TINY, [16, 32, 64, 96], [2, 4, 6, 8], num_heads=4, head_channels=128,
                             is_dw=True, **kwargs)


@register_model(**_INFO)
def topformer_small(**kwargs) -> TopFormerSeg:
    return _create_topformer(_TPM_SMALL, [24, 48, 96, 128], [2, 4, 6, 9], num_heads=6, head_channels=192,
                             is_dw=False, **kwargs)


@register_model(**_INFO)
def topformer_base(**kwargs) -> TopFormerSeg:
    return _create_topformer(_TPM_BASE, [32, 64, 128, 160], [2, 4, 6, 9], num_heads=8, head_channels=256,
                             is_dw=False, **kwargs)
