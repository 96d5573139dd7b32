"""The integer-only I-Segmenter (``quant.int_segmenter.IntSegmenter``) as one ONNX graph, layer for layer its
``forward``: float image → ``QuantizeLinear`` → int8 / int16 / int32 / int64 tensors → ``DequantizeLinear`` → float
logits at input resolution.

Products of two int8 tensors are ``MatMulInteger`` (int32 accumulation, int8 weights stored as int8: ONNX
``MatMul`` has no int8 form, and a ``Cast`` of an int8 weight is folded by TVM's importer into an int32 constant,
four times larger). Shiftmax probabilities are int16, so ``p @ v`` is an int32 ``MatMul``. Nearest upsampling is
a replication of the int8 patch logits (``Expand``), before the dequantization.
"""

from __future__ import annotations

import numpy as np
import torch

from mobilevit_deploy.quant.int_segmenter import IntSegmenter
from mobilevit_deploy.quant.int_segmenter.blocks import PROB_BITS, IntBlock
from mobilevit_deploy.quant.int_segmenter.layers import (
    ACT_BITS,
    ONE,
    RESIDUAL_BITS,
    IntLinear,
    IntNorm,
    IntResidualLinear,
)
from mobilevit_deploy.quant.ivit.shiftgelu import GELU_BITS, GELU_N

from .arith import I64, requantize, requantize_add
from .graph import GraphBuilder
from .kernels import int_layernorm, shiftgelu, shiftmax

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
INTEGER_OUTPUT_NAME = "logits_int8"


def _shape(g: GraphBuilder, dims: list[int] | tuple[int, ...]) -> str:
    return g.const(np.array(dims, dtype=I64))


def _weight(g: GraphBuilder, layer: IntLinear) -> str:
    """The int8 weight (N, K) stored transposed, (K, N), as the right operand of ``x @ Wᵀ``."""
    return g.const(layer.weight.t().contiguous().numpy(), name="weight")


def _accumulate(g: GraphBuilder, layer: IntLinear, x: str) -> str:
    """``IntLinear.accumulate``: x @ Wᵀ + b in int32."""
    acc = g.op("MatMulInteger", x, _weight(g, layer))
    if layer.bias is None:
        return acc
    return g.op("Add", acc, g.const(layer.bias.numpy(), name="bias"))


def emit_linear(g: GraphBuilder, layer: IntLinear, x: str) -> str:
    return requantize(g, _accumulate(g, layer, x), layer.dyadic("out"), layer.out_bits)


def emit_residual_linear(g: GraphBuilder, layer: IntResidualLinear, x: str, residual: str) -> str:
    return requantize_add(g, residual, layer.dyadic("residual"), _accumulate(g, layer, x), layer.dyadic("out"),
                          RESIDUAL_BITS)


def emit_norm(g: GraphBuilder, norm: IntNorm, x: str, dim: int) -> str:
    """``IntNorm``: I-LayerNorm, γ's sign, then γ and the scale in one dyadic and β in output units."""
    y = int_layernorm(g, x, dim)
    if bool((norm.sign != 1).any()):
        y = g.op("Mul", y, g.const(norm.sign.numpy(), I64))
    return requantize_add(g, y, norm.dyadic("out"), norm.beta, ONE, norm.out_bits)


def emit_block(g: GraphBuilder, block: IntBlock, r: str, batch: int, tokens: int, dim: int) -> str:
    """``IntBlock.forward`` on the int16 residual stream (batch, tokens, dim)."""
    heads = block.heads
    with g.scope("attn"):
        with g.scope("norm1"):
            a = emit_norm(g, block.norm1, r, dim)
        with g.scope("qkv"):
            qkv = emit_linear(g, block.qkv, a)
        qkv = g.op("Transpose", g.op("Reshape", qkv, _shape(g, [batch, tokens, 3, heads, dim // heads])),
                   perm=[2, 0, 3, 1, 4])  # 3, B, h, N, d
        q, k, v = (g.op("Gather", qkv, g.const(i, I64), axis=0) for i in range(3))
        logits = requantize(g, g.op("MatMulInteger", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                            block.dyadic("logits"), 32)
        p = shiftmax(g, logits, block.softmax_x0, block.softmax_n, PROB_BITS)
        o = g.op("MatMul", g.cast(p, np.int32), g.cast(v, np.int32))  # B, h, N, d: int16 · int8 in int32
        o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), _shape(g, [batch, tokens, dim]))
        o = requantize(g, o, block.dyadic("av"), ACT_BITS)
        with g.scope("proj"):
            r = emit_residual_linear(g, block.proj, o, r)
    with g.scope("mlp"):
        with g.scope("norm2"):
            b = emit_norm(g, block.norm2, r, dim)
        with g.scope("fc1"):
            h = emit_linear(g, block.fc1, b)
        h = requantize(g, shiftgelu(g, h, block.gelu_x0, GELU_N, GELU_BITS), block.dyadic("gelu"), ACT_BITS)
        with g.scope("fc2"):
            return emit_residual_linear(g, block.fc2, h, r)


def _tile(value: torch.Tensor, batch: int) -> torch.Tensor:
    return value.expand(batch, *value.shape[1:]).contiguous()


def emit_segmenter(g: GraphBuilder, model: IntSegmenter, batch: int) -> tuple[str, str]:
    """Append the whole model; return (float logits, int8 logits), both (B, classes, H, W)."""
    h, w = model.input_size
    p, classes = model.patch_size, model.num_classes
    gh, gw = h // p, w // p
    dim = model.cls_pos.shape[-1]
    x = g.input(INPUT_NAME, np.float32, [batch, 3, h, w])
    x = g.op("QuantizeLinear", x, g.const(np.float32(model.input_scale)), g.const(np.int8(0)), dtype=np.int8)

    with g.scope("patch_embed"):
        patches = g.op("Reshape", x, _shape(g, [batch, 3, gh, p, gw, p]))
        patches = g.op("Reshape", g.op("Transpose", patches, perm=[0, 2, 4, 1, 3, 5]),
                       _shape(g, [batch, gh * gw, 3 * p * p]))  # ``ivit.patchify``
        tokens = requantize_add(g, _accumulate(g, model.patch_embed, patches), model.patch_embed.dyadic("out"),
                                model.patch_pos, ONE, RESIDUAL_BITS)
    r = g.op("Concat", g.const(_tile(model.cls_pos, batch).numpy(), name="cls_pos"), tokens, axis=1)
    n = 1 + gh * gw
    for i, block in enumerate(model.encoder_blocks):
        with g.scope(f"encoder_blocks.{i}"):
            r = emit_block(g, block, r, batch, n, dim)
    with g.scope("encoder_norm"):
        tokens = emit_norm(g, model.encoder_norm, r, dim)
    tokens = g.op("Slice", tokens, _shape(g, [1]), _shape(g, [n]), _shape(g, [1]))  # class token dropped
    with g.scope("proj_dec"):
        r = emit_linear(g, model.proj_dec, tokens)
    r = g.op("Concat", r, g.const(_tile(model.cls_emb, batch).numpy(), name="cls_emb"), axis=1)
    n = gh * gw + classes
    for i, block in enumerate(model.decoder_blocks):
        with g.scope(f"decoder_blocks.{i}"):
            r = emit_block(g, block, r, batch, n, dim)
    with g.scope("decoder_norm"):
        x = emit_norm(g, model.decoder_norm, r, dim)
    with g.scope("proj_patch"):
        patches = emit_linear(g, model.proj_patch, g.op("Slice", x, _shape(g, [0]), _shape(g, [gh * gw]),
                                                       _shape(g, [1])))
    with g.scope("proj_classes"):
        cls = emit_linear(g, model.proj_classes, g.op("Slice", x, _shape(g, [gh * gw]), _shape(g, [n]),
                                                     _shape(g, [1])))
    with g.scope("masks"):
        masks = g.op("MatMulInteger", patches, g.op("Transpose", cls, perm=[0, 2, 1]))
        masks = requantize(g, masks, model.dyadic("masks"), RESIDUAL_BITS)
    with g.scope("mask_norm"):
        logits = emit_norm(g, model.mask_norm, masks, classes)  # B, N, classes int8
    with g.scope("upsample"):
        logits = g.op("Reshape", g.op("Transpose", logits, perm=[0, 2, 1]), _shape(g, [batch, classes, gh, 1, gw, 1]))
        logits = g.op("Expand", logits, _shape(g, [batch, classes, gh, p, gw, p]))  # nearest: replication
        logits = g.op("Reshape", logits, _shape(g, [batch, classes, h, w]), out_name=INTEGER_OUTPUT_NAME)
    out = g.op("DequantizeLinear", logits, g.const(np.float32(model.output_scale)), g.const(np.int8(0)),
               dtype=np.float32, out_name=OUTPUT_NAME)
    return out, logits
