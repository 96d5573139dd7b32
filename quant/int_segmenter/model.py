"""The integer-only I-Segmenter: every tensor between the input quantization and the output dequantization is an
integer (int8 activations, int16 residual stream, int32 accumulators, int64 inside the kernels).

``forward_int`` is the integer model (int8 image → int8 logits); ``forward`` wraps it with the two float
boundaries, ``quantize_input`` (QuantizeLinear) and the multiplication by ``output_scale`` (DequantizeLinear).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ivit import int_matmul, patchify, requantize, requantize_add
from .blocks import IntBlock
from .layers import ACT_BITS, ONE, RESIDUAL_BITS, IntLinear, IntNorm, _DyadicBuffers


class IntSegmenter(_DyadicBuffers):
    """Integer twin of a float ``Segmenter`` (I-Segmenter form) for one input size; built by ``convert_segmenter``."""

    def __init__(self, *, input_size: tuple[int, int], patch_size: int, input_scale: float, output_scale: float,
                 patch_embed: IntLinear, cls_pos: torch.Tensor, patch_pos: torch.Tensor, encoder_blocks: list[IntBlock],
                 encoder_norm: IntNorm, proj_dec: IntLinear, cls_emb: torch.Tensor, decoder_blocks: list[IntBlock],
                 decoder_norm: IntNorm, proj_patch: IntLinear, proj_classes: IntLinear, masks_out: torch.Tensor,
                 mask_norm: IntNorm) -> None:
        super().__init__()
        self.input_size, self.patch_size = tuple(input_size), patch_size
        self.input_scale, self.output_scale = input_scale, output_scale  # the two float boundaries
        self.patch_embed = patch_embed  # the p×p stride-p conv as a linear layer on patches (D, 3·p·p)
        self.register_buffer("cls_pos", cls_pos)  # int16 (1, 1, D): class token + its position, at s_r0
        self.register_buffer("patch_pos", patch_pos)  # int16 (1, N, D): positions resized to this grid, at s_r0
        self.encoder_blocks = nn.ModuleList(encoder_blocks)
        self.encoder_norm = encoder_norm
        self.proj_dec = proj_dec
        self.register_buffer("cls_emb", cls_emb)  # int16 (1, n_cls, D) at the decoder's residual scale
        self.decoder_blocks = nn.ModuleList(decoder_blocks)
        self.decoder_norm = decoder_norm
        self.proj_patch, self.proj_classes = proj_patch, proj_classes
        self._set_dyadic("masks", masks_out)
        self.mask_norm = mask_norm

    @property
    def num_classes(self) -> int:
        return self.cls_emb.shape[1]

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The float → int8 boundary (symmetric, per tensor)."""
        return torch.clamp(torch.round(x / self.input_scale), -128, 127).to(torch.int8)

    def forward_masks_int(self, x: torch.Tensor) -> torch.Tensor:
        """int8 image (B, 3, H, W) → int8 logits at patch resolution (B, n_cls, H/p, W/p), scale ``output_scale``."""
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"this integer model was built for {self.input_size[0]}x{self.input_size[1]} inputs, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        b = x.shape[0]
        gh, gw = (s // self.patch_size for s in self.input_size)
        tokens = self.patch_embed.accumulate(patchify(x, self.patch_size))  # B,N,D int32
        tokens = requantize_add(tokens, self.patch_embed.dyadic("out"), self.patch_pos, ONE, RESIDUAL_BITS)
        r = torch.cat([self.cls_pos.expand(b, -1, -1), tokens], dim=1)  # B,1+N,D int16
        for block in self.encoder_blocks:
            r = block(r)
        tokens = self.encoder_norm(r)[:, 1:]  # B,N,D int8, class token dropped
        r = torch.cat([self.proj_dec(tokens), self.cls_emb.expand(b, -1, -1)], dim=1)  # B,N+n_cls,D int16
        for block in self.decoder_blocks:
            r = block(r)
        x = self.decoder_norm(r)
        patches, classes = self.proj_patch(x[:, : -self.num_classes]), self.proj_classes(x[:, -self.num_classes :])
        masks = requantize(int_matmul(patches, classes.transpose(1, 2)), self.dyadic("masks"), RESIDUAL_BITS)
        logits = self.mask_norm(masks)  # B,N,n_cls int8
        return logits.transpose(1, 2).reshape(b, self.num_classes, gh, gw)

    def forward_int(self, x: torch.Tensor) -> torch.Tensor:
        """int8 image → int8 logits at input resolution (nearest upsampling is replication)."""
        masks = self.forward_masks_int(x)
        return masks.repeat_interleave(self.patch_size, dim=-2).repeat_interleave(self.patch_size, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_int(self.quantize_input(x)).to(torch.float32) * self.output_scale


__all__ = ["ACT_BITS", "IntSegmenter"]
