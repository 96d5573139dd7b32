"""Segmenter (ICCV 2021, arXiv 2105.05633) and its I-Segmenter float form (arXiv 2509.10334).

A plain ViT encoder (patch 16, pre-norm blocks, class token, learned positional embedding resized bilinearly to
the input's grid) and the Mask Transformer decoder: ``n_cls`` learned class embeddings are appended to the
projected patch tokens, two more ViT blocks run over both, then masks = patches @ classes^T, a LayerNorm over the
classes, and an upsampling to the input size. Module and parameter names follow rstrudel/segmenter
(``segm/model/{vit,blocks,decoder,segmenter}.py``), so its ``{'model': state_dict}`` checkpoints load 1:1,
including the encoder's unused 1000-class ``head``.

I-Segmenter changes two things to make the model integer-friendly, and they are the defaults here:
the L2 normalisation of patch and class features before their product is removed (``l2_norm=False``) and the
bilinear upsampling of the masks becomes nearest-neighbour (``upsample="nearest"``). ``l2_norm=True,
upsample="bilinear"`` is the original Segmenter, numerically equal to the official code (pinned by tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mobilevit_deploy.errors import InputSizeError

from ._layers import Add, DropPath, MatMul, Resize
from ._registry import Task, register_model

__all__ = ["MaskTransformer", "Segmenter", "VisionTransformer", "isegmenter_small", "isegmenter_tiny"]

UPSAMPLE_MODES = ("nearest", "bilinear")


def _init_linear_and_norm(m: nn.Module) -> None:
    """The official ``init_weights``: truncated-normal linear weights (std 0.02), zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth rising linearly from 0 to ``rate`` (the official ``linspace``), in plain Python so
    building on the meta device works."""
    return [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]


class PatchEmbedding(nn.Module):
    """Non-overlapping patch × patch conv, flattened to tokens: (B, 3, H, W) → (B, H/p · W/p, D)."""

    def __init__(self, patch_size: int, embed_dim: int, channels: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # B,N,D


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection; logits scaled by head_dim^-0.5 after q @ kᵀ."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.matmul_qk = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.matmul_av = MatMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # 3,B,h,N,d
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.softmax(self.matmul_qk(q, k.transpose(-2, -1)) * self.scale)  # B,h,N,N
        out = self.matmul_av(attn, v).transpose(1, 2).reshape(b, n, c)  # B,N,C
        return self.proj(out)


class FeedForward(nn.Module):
    """``fc1`` → GELU (exact, erf) → ``fc2``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` (norms registered first,
    as in the official file, so the state-dict order matches)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = FeedForward(dim, mlp_dim)
        self.drop_path = DropPath(drop_path)
        self.add_attn = Add()
        self.add_mlp = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add_attn(x, self.drop_path(self.attn(self.norm1(x))))
        return self.add_mlp(x, self.drop_path(self.mlp(self.norm2(x))))


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int],
                     num_extra_tokens: int = 1) -> torch.Tensor:
    """Bilinearly resize the patch part of a (1, extra + gh·gw, D) positional embedding to another grid."""
    if tuple(grid) == tuple(new_grid):
        return pos_embed
    extra, patches = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    patches = patches.reshape(1, grid[0], grid[1], -1).permute(0, 3, 1, 2)  # 1,D,gh,gw
    patches = F.interpolate(patches, size=new_grid, mode="bilinear", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1)
    return torch.cat([extra, patches], dim=1)


class VisionTransformer(nn.Module):
    """The encoder: patch embedding + class token + positional embedding, ``depth`` blocks, final LayerNorm.

    ``forward`` returns the normalised tokens (class token first), as the official ``return_features=True``.
    ``head`` is the official classifier (1000 ImageNet classes), kept only so official checkpoints load strictly.
    """

    def __init__(self, image_size: int, patch_size: int, depth: int, dim: int, mlp_dim: int, heads: int,
                 n_cls: int = 1000, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.patch_embed = PatchEmbedding(patch_size, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim, rate)
                                    for rate in _drop_path_rates(drop_path_rate, depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_cls)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_linear_and_norm)

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The (1, 1 + gh·gw, D) positional embedding for a token grid (resized when it is not the trained one)."""
        return resize_pos_embed(self.pos_embed, self.grid, grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = self.patch_embed(x)  # B,N,D
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)  # B,1+N,D
        x = x + self.positional_embedding((h // self.patch_size, w // self.patch_size))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class L2Normalize(nn.Module):
    """``x / ||x||₂`` over the last dim: Segmenter's normalisation of patch and class features (not I-Segmenter's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=-1, keepdim=True)


class MaskTransformer(nn.Module):
    """The decoder: class embeddings join the projected patch tokens, blocks, then patch·class masks (B, n_cls, gh, gw).

    ``proj_patch`` and ``proj_classes`` are bare (D, D) parameters applied as ``x @ W`` (official layout);
    ``matmul_patch`` / ``matmul_classes`` are the modules that apply them, so quantizers find the products.
    """

    def __init__(self, n_cls: int, patch_size: int, d_encoder: int, n_layers: int, n_heads: int, d_model: int,
                 d_ff: int, drop_path_rate: float = 0.0, l2_norm: bool = False) -> None:
        super().__init__()
        self.n_cls = n_cls
        self.patch_size = patch_size
        scale = d_model**-0.5
        self.cls_emb = nn.Parameter(torch.zeros(1, n_cls, d_model))
        self.proj_patch = nn.Parameter(scale * torch.randn(d_model, d_model))
        self.proj_classes = nn.Parameter(scale * torch.randn(d_model, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, rate)
                                    for rate in _drop_path_rates(drop_path_rate, n_layers))
        self.proj_dec = nn.Linear(d_encoder, d_model)
        self.decoder_norm = nn.LayerNorm(d_model)
        self.mask_norm = nn.LayerNorm(n_cls)
        self.matmul_patch = MatMul()
        self.matmul_classes = MatMul()
        self.matmul_masks = MatMul()
        self.l2_patch = L2Normalize() if l2_norm else None
        self.l2_classes = L2Normalize() if l2_norm else None
        self.apply(_init_linear_and_norm)
        nn.init.trunc_normal_(self.cls_emb, std=0.02)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b = x.shape[0]
        x = self.proj_dec(x)  # B,N,D
        x = torch.cat((x, self.cls_emb.expand(b, -1, -1)), dim=1)  # B,N+n_cls,D
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches, classes = x[:, : -self.n_cls], x[:, -self.n_cls :]
        patches = self.matmul_patch(patches, self.proj_patch)  # B,N,D
        classes = self.matmul_classes(classes, self.proj_classes)  # B,n_cls,D
        if self.l2_patch is not None:
            patches, classes = self.l2_patch(patches), self.l2_classes(classes)
        masks = self.mask_norm(self.matmul_masks(patches, classes.transpose(1, 2)))  # B,N,n_cls
        return masks.transpose(1, 2).reshape(b, self.n_cls, grid[0], grid[1])  # B,n_cls,gh,gw


class Segmenter(nn.Module):
    """Official ``Segmenter`` layout (``encoder``, ``decoder``): logits upsampled to the input size (stride 1)."""

    def __init__(self, encoder: VisionTransformer, decoder: MaskTransformer, upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.patch_size = encoder.patch_size
        self.encoder = encoder
        self.decoder = decoder
        self.upsample = Resize(upsample, align_corners=False)

    def forward_masks(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's masks at patch resolution (B, n_cls, H/16, W/16), before upsampling."""
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise InputSizeError(f"Segmenter cannot take a {h}x{w} input: height and width must be multiples of {p}",
                                 hint=f"resize or pad to e.g. {max(p, h // p * p)}x{max(p, w // p * p)}")
        tokens = self.encoder(x)[:, 1:]  # drop the class token: B,N,D
        return self.decoder(tokens, (h // p, w // p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.forward_masks(x), (x.shape[-2], x.shape[-1]))


def _create_segmenter(dim: int, heads: int, num_classes: int, image_size: int = 512, patch_size: int = 16,
                      depth: int = 12, decoder_layers: int = 2, drop_path_rate: float = 0.0,
                      l2_norm: bool = False, upsample: str = "nearest") -> Segmenter:
    """Official ``create_segmenter`` for a ViT backbone + ``mask_transformer`` decoder: MLP 4·D in both, decoder
    heads D // 64, decoder drop path 0 (config.yml); ``drop_path_rate`` is the encoder's (train.py default 0.1)."""
    encoder = VisionTransformer(image_size, patch_size, depth, dim, 4 * dim, heads, drop_path_rate=drop_path_rate)
    decoder = MaskTransformer(num_classes, patch_size, dim, decoder_layers, dim // 64, dim, 4 * dim,
                              l2_norm=l2_norm)
    return Segmenter(encoder, decoder, upsample)


_INFO = dict(
    family="isegmenter", task=Task.SEGMENTATION, default_input_size=512, num_classes=150, input_multiple=16,
    output_stride=1, checkpoint_format="Segmenter {'model'}: encoder./decoder.",
    paper="arXiv 2509.10334 (I-Segmenter), arXiv 2105.05633 (Segmenter)",
    mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5),  # the "vit" normalization of segm/data/utils.py
)


@register_model(**_INFO)
def isegmenter_tiny(**kwargs) -> Segmenter:
    return _create_segmenter(dim=192, heads=3, **kwargs)


@register_model(**_INFO)
def isegmenter_small(**kwargs) -> Segmenter:
    return _create_segmenter(dim=384, heads=6, **kwargs)
