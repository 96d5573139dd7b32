"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers (arXiv 2408.03703), the official ``RCViT``.

Classification variants (``casvit_xs`` … ``casvit_t``: ``head`` and ``dist_head``, eval output = their mean) and
the dense-prediction backbone (``fork_feat``: four outputs, each through its own BatchNorm ``norm0/2/4/6``) used
by the segmenters in ``casvit_seg.py``. Module names follow Tianfang-Zhang/CAS-ViT so official checkpoints load.

The token mixer has no softmax and no matmul: q and k are gated by a spatial map and a channel map (sigmoids),
summed, passed through a depthwise conv and multiplied with v.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._layers import Add, DropPath, Mul
from ._registry import Task, register_model

__all__ = ["RCViT", "casvit_m", "casvit_s", "casvit_t", "casvit_xs"]


def _stem(in_chs: int, out_chs: int) -> nn.Sequential:
    """Two 3×3 stride-2 convs with BN and ReLU: stride 4."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs // 2, 3, 2, 1), nn.BatchNorm2d(out_chs // 2), nn.ReLU(),
        nn.Conv2d(out_chs // 2, out_chs, 3, 2, 1), nn.BatchNorm2d(out_chs), nn.ReLU(),
    )


class Embedding(nn.Module):
    """Downsampling between stages: 3×3 stride-2 conv (bias) + BN."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, 3, 2, 1)
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class Mlp(nn.Module):
    """1×1 conv → GELU → 1×1 conv (both with bias)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SpatialOperation(nn.Module):
    """``x * sigmoid(conv1x1(relu(bn(dwconv3x3(x)))))``: one spatial gate broadcast over channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.Conv2d(dim, 1, 1, 1, 0, bias=False), nn.Sigmoid(),
        )
        self.mul = Mul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mul(x, self.block(x))


class ChannelOperation(nn.Module):
    """``x * sigmoid(conv1x1(global_avg_pool(x)))``: one gate per channel."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(dim, dim, 1, 1, 0, bias=False),
                                   nn.Sigmoid())
        self.mul = Mul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mul(x, self.block(x))


class LocalIntegration(nn.Module):
    """1×1 conv → BN → 3×3 depthwise conv → GELU → 1×1 conv (all convs with bias)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim), nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.GELU(),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class AdditiveTokenMixer(nn.Module):
    """Convolutional additive token mixer: ``proj(dwc(Φ(q) + Φ(k)) * v)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.oper_q = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.oper_k = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.dwc = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.add = Add()
        self.mul = Mul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(self.mul(self.dwc(self.add(self.oper_q(q), self.oper_k(k))), v))


class AdditiveBlock(nn.Module):
    """``x + local(x)``, ``x + mixer(norm1(x))``, ``x + mlp(norm2(x))`` with BatchNorm as the norm."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.local_perception = LocalIntegration(dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = AdditiveTokenMixer(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.add_local = Add()
        self.add_attn = Add()
        self.add_mlp = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_local(x, self.local_perception(x))
        x = self.add_attn(x, self.drop_path(self.attn(self.norm1(x))))
        return self.add_mlp(x, self.drop_path(self.mlp(self.norm2(x))))


class RCViT(nn.Module):
    """The CAS-ViT network: stem, then ``network = [stage0, emb, stage1, emb, stage2, emb, stage3]``.

    With ``fork_feat`` it returns the four stage outputs through ``norm0/2/4/6`` (for dense prediction);
    otherwise BN → global mean → the mean of ``head`` and ``dist_head`` in eval mode (both in training).
    """

    out_indices = (0, 2, 4, 6)

    def __init__(self, layers: Sequence[int], embed_dims: Sequence[int], mlp_ratio: float = 4.0,
                 num_classes: int = 1000, drop_path_rate: float = 0.0, fork_feat: bool = False) -> None:
        super().__init__()
        self.fork_feat = fork_feat
        self.embed_dims = list(embed_dims)
        self.patch_embed = _stem(3, embed_dims[0])
        total = sum(layers)
        network: list[nn.Module] = []
        for i, depth in enumerate(layers):
            start = sum(layers[:i])
            rates = [drop_path_rate * (start + j) / (total - 1) for j in range(depth)]
            network.append(nn.Sequential(*(AdditiveBlock(embed_dims[i], mlp_ratio, r) for r in rates)))
            if i < len(layers) - 1:
                network.append(Embedding(embed_dims[i], embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        if fork_feat:
            for i_emb, i_layer in enumerate(self.out_indices):
                self.add_module(f"norm{i_layer}", nn.BatchNorm2d(embed_dims[i_emb]))
        else:
            self.num_classes = num_classes
            self.norm = nn.BatchNorm2d(embed_dims[-1])
            self.head = nn.Linear(embed_dims[-1], num_classes)
            self.dist_head = nn.Linear(embed_dims[-1], num_classes)
            for head in (self.head, self.dist_head):
                nn.init.trunc_normal_(head.weight, std=0.02)
                nn.init.zeros_(head.bias)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs (strides 4, 8, 16, 32), normed when ``fork_feat``."""
        x = self.patch_embed(x)
        outs = []
        for idx, block in enumerate(self.network):
            x = block(x)
            if idx in self.out_indices:
                outs.append(getattr(self, f"norm{idx}")(x) if self.fork_feat else x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, torch.Tensor]:
        feats = self.forward_features(x)
        if self.fork_feat:
            return feats
        pooled = self.norm(feats[-1]).mean(dim=(2, 3), keepdim=True).flatten(1)  # B,C (XNNPACK: 4-D, keepdim)
        cls_out, dist_out = self.head(pooled), self.dist_head(pooled)
        if self.training:
            return cls_out, dist_out
        return (cls_out + dist_out) / 2.0


_CASVIT_VARIANTS: dict[str, tuple[list[int], list[int]]] = {
    "xs": ([2, 2, 4, 2], [48, 56, 112, 220]),
    "s": ([3, 3, 6, 3], [48, 64, 128, 256]),
    "m": ([3, 3, 6, 3], [64, 96, 192, 384]),
    "t": ([3, 3, 6, 3], [96, 128, 256, 512]),
}

_INFO = dict(
    family="casvit", task=Task.CLASSIFICATION, default_input_size=224, num_classes=1000, input_multiple=32,
    output_stride=0, checkpoint_format="{'model'}: raw RCViT keys (head + dist_head)", paper="arXiv 2408.03703",
)


def _create_casvit(variant: str, **kwargs) -> RCViT:
    layers, dims = _CASVIT_VARIANTS[variant]
    return RCViT(layers, dims, **kwargs)


@register_model(**_INFO)
def casvit_xs(**kwargs) -> RCViT:
    return _create_casvit("xs", **kwargs)


@register_model(**_INFO)
def casvit_s(**kwargs) -> RCViT:
    return _create_casvit("s", **kwargs)


@register_model(**_INFO)
def casvit_m(**kwargs) -> RCViT:
    return _create_casvit("m", **kwargs)


@register_model(**_INFO)
def casvit_t(**kwargs) -> RCViT:
    return _create_casvit("t", **kwargs)
