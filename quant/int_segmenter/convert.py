"""``convert_segmenter``: post-training quantization of a float I-Segmenter into its integer-only twin.

One calibration image or many (the paper claims one already works): max-abs ranges from one float pass
(``ranges``), then every layer's integers from those ranges (``layers``, ``blocks``). Optionally λ-ShiftGELU with
λ fitted per MLP on the calibration activations (the documented hypothesis, ``ivit.shiftgelu``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..api import calibration_batches
from ..errors import QuantConfigError
from ..ivit import dyadic_from_ratio, fit_lambda
from .blocks import IntBlock
from .layers import ACT_BITS, RESIDUAL_BITS, IntLinear, IntNorm, act_scale, quantize_constant
from .model import IntSegmenter
from .ranges import Ranges, collect_ranges


def _check_isegmenter(model: nn.Module) -> None:
    decoder = getattr(model, "decoder", None)
    if type(model).__name__ != "Segmenter" or decoder is None:
        raise QuantConfigError(f"convert_segmenter takes a Segmenter from the zoo, got {type(model).__name__}")
    if decoder.l2_patch is not None or model.upsample.mode != "nearest":
        raise QuantConfigError("the integer-only model needs the I-Segmenter form",
                               hint="build it with l2_norm=False, upsample='nearest' (the isegmenter_* default)")


def _blocks(blocks: nn.ModuleList, ranges: Ranges, prefix: str, fit_gelu: bool) -> list[IntBlock]:
    out = []
    for i, block in enumerate(blocks):
        path = f"{prefix}.{i}"
        lam = 1.0
        if fit_gelu:
            s_g = act_scale(ranges[f"{path}.mlp.fc1"], ACT_BITS)
            lam = fit_lambda(ranges.gelu_samples[f"{path}.mlp.fc1"], s_g)
        out.append(IntBlock.from_float(block, ranges, path, act_scale(ranges[f"{path}.in"], RESIDUAL_BITS),
                                       act_scale(ranges[f"{path}.add_mlp"], RESIDUAL_BITS), lam))
    return out


def convert_segmenter(model: nn.Module, calib: Iterable[torch.Tensor] | torch.Tensor, *, batch_size: int = 8,
                      fit_gelu_lambda: bool = False) -> IntSegmenter:
    """The integer-only model of a float I-Segmenter, calibrated on ``calib`` (one image or a set, [N,3,H,W] or
    a list); it is built for the calibration images' size."""
    _check_isegmenter(model)
    model = model.eval()
    batches = calibration_batches(calib, batch_size=batch_size)
    ranges = collect_ranges(model, batches)
    enc, dec = model.encoder, model.decoder
    h, w = batches[0].shape[-2:]
    p = model.patch_size
    grid = (h // p, w // p)

    s_in = act_scale(ranges["input"], ACT_BITS)
    s_r0 = act_scale(ranges["encoder.blocks.0.in"], RESIDUAL_BITS)
    proj = enc.patch_embed.proj
    with torch.no_grad():
        pos = enc.positional_embedding(grid)

    s_enc = act_scale(ranges["encoder.norm"], ACT_BITS)
    s_d0 = act_scale(ranges["decoder.blocks.0.in"], RESIDUAL_BITS)
    s_dn = act_scale(ranges["decoder.decoder_norm"], ACT_BITS)
    s_p = act_scale(ranges["decoder.matmul_patch"], ACT_BITS)
    s_c = act_scale(ranges["decoder.matmul_classes"], ACT_BITS)
    s_m = act_scale(ranges["decoder.matmul_masks"], RESIDUAL_BITS)
    s_out = act_scale(ranges["decoder.mask_norm"], ACT_BITS)
    return IntSegmenter(
        input_size=(h, w), patch_size=p, input_scale=s_in, output_scale=s_out,
        patch_embed=IntLinear.from_float(proj.weight.reshape(proj.out_channels, -1), proj.bias, s_in, s_r0,
                                         RESIDUAL_BITS),
        cls_pos=quantize_constant(enc.cls_token + pos[:, :1], s_r0, RESIDUAL_BITS),
        patch_pos=quantize_constant(pos[:, 1:], s_r0, RESIDUAL_BITS),
        encoder_blocks=_blocks(enc.blocks, ranges, "encoder.blocks", fit_gelu_lambda),
        encoder_norm=IntNorm.from_float(enc.norm, s_enc),
        proj_dec=IntLinear.from_float(dec.proj_dec.weight, dec.proj_dec.bias, s_enc, s_d0, RESIDUAL_BITS),
        cls_emb=quantize_constant(dec.cls_emb, s_d0, RESIDUAL_BITS),
        decoder_blocks=_blocks(dec.blocks, ranges, "decoder.blocks", fit_gelu_lambda),
        decoder_norm=IntNorm.from_float(dec.decoder_norm, s_dn),
        proj_patch=IntLinear.from_float(dec.proj_patch.t(), None, s_dn, s_p),  # x @ W is a linear with Wᵀ
        proj_classes=IntLinear.from_float(dec.proj_classes.t(), None, s_dn, s_c),
        masks_out=dyadic_from_ratio(s_p * s_c / s_m),
        mask_norm=IntNorm.from_float(dec.mask_norm, s_out),
    )
