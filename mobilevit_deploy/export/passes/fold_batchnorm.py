"""Fold inference BatchNormalization into the neighbouring convolution.

Backward (Conv → BN, the usual post-norm): ``W' = W·s``, ``b' = b·s + t`` per output channel. Forward
(BN → Conv, CAS-ViT's pre-norms before ``qkv``, ``fc1`` and the FPN laterals): ``W' = W·s`` per *input* channel
and ``b' = b + Σ W·t``; exact only when the conv pads nothing (zero padding would be applied after the BN shift,
not before), so padded convs keep their BN. Through pooling (BN → spatial mean → Gemm, the CAS-ViT classifier's
final norm before its two heads): a mean over space commutes with a per-channel affine, so every Gemm reading the
pooled vector takes ``W' = W·s`` per input column and ``b' = b + W·t``. Here ``s = γ/√(σ²+ε)`` and
``t = β − μ·s``.
Every folded BN removes a full pass over the feature map, and a graph without BN is what integer lowering wants.
"""

from __future__ import annotations

import numpy as np
import onnx

from ._graph import GraphIndex, add_initializer, attribute, remove_unused_initializers

NAME = "fold_batchnorm"


def _bn_affine(index: GraphIndex, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    params = [index.const(name) for name in bn.input[1:5]]
    if any(p is None for p in params) or attribute(bn, "training_mode", 0):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(attribute(bn, "epsilon", 1e-5)))
    return scale, beta - mean * scale


def _conv_params(index: GraphIndex, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    weight = index.const(conv.input[1])
    if weight is None or weight.ndim != 4:
        return None
    bias = index.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0])
    return (None if bias is None else (weight.astype(np.float64), bias.astype(np.float64)))


def _set_conv_params(graph: onnx.GraphProto, conv: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray) -> None:
    conv.input[1] = add_initializer(graph, conv.input[1], weight.astype(np.float32))
    bias_name = add_initializer(graph, conv.input[2] if len(conv.input) > 2 and conv.input[2] else
                                f"{conv.name}_bias", bias.astype(np.float32))
    if len(conv.input) > 2:
        conv.input[2] = bias_name
    else:
        conv.input.append(bias_name)


def _fold_backward(graph: onnx.GraphProto, index: GraphIndex, bn: onnx.NodeProto) -> bool:
    conv = index.producer.get(bn.input[0])
    if conv is None or conv.op_type != "Conv" or index.only_consumer(bn.input[0]) is not bn:
        return False
    affine, params = _bn_affine(index, bn), _conv_params(index, conv)
    if affine is None or params is None:
        return False
    (scale, shift), (weight, bias) = affine, params
    _set_conv_params(graph, conv, weight * scale[:, None, None, None], bias * scale + shift)
    conv.output[0] = bn.output[0]
    return True


def _fold_forward(graph: onnx.GraphProto, index: GraphIndex, bn: onnx.NodeProto) -> bool:
    conv = index.only_consumer(bn.output[0])
    if conv is None or conv.op_type != "Conv" or conv.input[0] != bn.output[0]:
        return False
    pads = attribute(conv, "pads", None) or [0]
    auto_pad = attribute(conv, "auto_pad", b"NOTSET")
    if any(pads) or auto_pad not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        return False
    affine, params = _bn_affine(index, bn), _conv_params(index, conv)
    if affine is None or params is None:
        return False
    (scale, shift), (weight, bias) = affine, params
    groups = int(attribute(conv, "group", 1))
    out_ch, in_per_group = weight.shape[:2]
    # input channel feeding weight[o, j] is (o // (out_ch / groups)) * in_per_group + j
    channel = (np.arange(out_ch)[:, None] // (out_ch // groups)) * in_per_group + np.arange(in_per_group)[None, :]
    new_bias = bias + (weight * shift[channel][:, :, None, None]).sum(axis=(1, 2, 3))
    _set_conv_params(graph, conv, weight * scale[channel][:, :, None, None], new_bias)
    conv.input[0] = bn.input[0]
    return True


def _pooled_channels(index: GraphIndex, start: str, channels: int) -> str | None:
    """Follow single-reader, channel-preserving spatial reductions from ``start``; return the (B, C) tensor."""
    name = start
    for _ in range(4):
        node = index.only_consumer(name)
        if node is None or node.input[0] != name:
            return None
        if node.op_type == "Reshape":
            shape = index.const(node.input[1])
            if shape is None or len(shape) < 2 or int(shape[1]) != channels:
                return None
        elif node.op_type == "ReduceMean":
            axes = index.const(node.input[1]) if len(node.input) > 1 and node.input[1] else attribute(node, "axes")
            if axes is None or any(int(a) in (0, 1) for a in list(axes)):
                return None
        elif node.op_type not in ("GlobalAveragePool", "Flatten"):
            return None
        name = node.output[0]
        readers = index.consumers.get(name, [])
        if readers and all(r.op_type == "Gemm" for r in readers):
            return name
    return None


def _fold_into_gemms(graph: onnx.GraphProto, index: GraphIndex, bn: onnx.NodeProto) -> bool:
    affine = _bn_affine(index, bn)
    if affine is None:
        return False
    scale, shift = affine
    pooled = _pooled_channels(index, bn.output[0], len(scale))
    if pooled is None or pooled in index.graph_outputs:
        return False
    gemms = index.consumers[pooled]
    for gemm in gemms:
        weight = index.const(gemm.input[1])
        if (gemm.input[0] != pooled or weight is None or attribute(gemm, "transA", 0)
                or attribute(gemm, "alpha", 1.0) != 1.0 or attribute(gemm, "beta", 1.0) != 1.0):
            return False
    for gemm in gemms:
        weight = index.const(gemm.input[1]).astype(np.float64)
        w_out_in = weight if attribute(gemm, "transB", 0) else weight.T  # (out, C)
        bias = index.const(gemm.input[2]) if len(gemm.input) > 2 and gemm.input[2] else np.zeros(len(w_out_in))
        new_w = w_out_in * scale[None, :]
        gemm.input[1] = add_initializer(graph, gemm.input[1], (new_w if attribute(gemm, "transB", 0)
                                                               else new_w.T).astype(np.float32))
        bias_name = add_initializer(graph, f"{gemm.input[1]}_bias", (bias + w_out_in @ shift).astype(np.float32))
        if len(gemm.input) > 2:
            gemm.input[2] = bias_name
        else:
            gemm.input.append(bias_name)
    index.only_consumer(bn.output[0]).input[0] = bn.input[0]
    return True


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    changed = True
    while changed:  # re-index after each fold: folds change producers and consumers
        changed = False
        index = GraphIndex(graph)
        for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
            if len([o for o in bn.output if o]) != 1:
                continue
            if (_fold_backward(graph, index, bn) or _fold_forward(graph, index, bn)
                    or _fold_into_gemms(graph, index, bn)):
                graph.node.remove(bn)
                changed = True
                break
    remove_unused_initializers(graph)
    return model
