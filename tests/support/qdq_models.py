"""Small QDQ ONNX models built with ``onnx.helper`` (opset 21, IR 10) for the TVM integer rewrite.

Each model is one conv/matmul with its quantizers, written the way ONNX Runtime's ``quantize_static`` and our QDQ
exporter write them: activations ``QuantizeLinear → DequantizeLinear`` per tensor (uint8 or int8, asymmetric or
symmetric), weights as int8 initializers behind a per-channel ``DequantizeLinear``, bias int32 (scale s_x·s_w) or
float. Activation scales are calibrated: the float prefix of the graph runs in ONNX Runtime on a seeded input, so
the quantizers cover the real range (with a little saturation on other inputs, as in practice).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
IR_VERSION = 10  # onnx 1.23 writes IR 14 by default, which ONNX Runtime 1.31 refuses


def run_ort(model: onnx.ModelProto, x: np.ndarray, optimized: bool = False) -> np.ndarray:
    """First output under ONNX Runtime; ``optimized=False`` is the literal QDQ float simulation (no fusion)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


class QDQGraph:
    """A graph under construction; ``x`` is the float input, tensors are named by the helpers."""

    def __init__(self, input_shape: tuple[int, ...], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.input_shape = input_shape
        self.calibration = self.rng.standard_normal(input_shape).astype(np.float32)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.scales: dict[str, float] = {}  # dequantized tensor -> its scale
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, array: np.ndarray, prefix: str = "c") -> str:
        name = self._name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def model(self, output: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                    list(self.input_shape))],
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                                  self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)  # gives the output its shape
        onnx.checker.check_model(model)
        return model

    def value_range(self, tensor: str) -> tuple[float, float]:
        """min and max of ``tensor`` on the calibration input (the graph so far, run by ONNX Runtime)."""
        values = self.calibration if tensor == "x" else run_ort(self.model(tensor), self.calibration)
        return float(values.min()), float(values.max())

    def qdq(self, tensor: str, dtype: str = "uint8", symmetric: bool = False, narrow: bool = False) -> str:
        """QuantizeLinear → DequantizeLinear with per-tensor parameters fitted to the calibration range.

        ``narrow``: clip the codes to [-127, 127] in between, as our exporter does for symmetric int8.
        """
        low, high = self.value_range(tensor)
        low, high = min(low, 0.0), max(high, 0.0)
        if symmetric:
            scale = np.float32(max(-low, high) / 127)
            zero = 0
        else:
            scale = np.float32((high - low) / 255)
            zero = round(float(-low / scale)) + (0 if dtype == "uint8" else -128)
        zp = self.const(np.asarray(zero, dtype), "zp")
        s = self.const(np.asarray(scale, np.float32), "s")
        q = self.node("QuantizeLinear", [tensor, s, zp])
        if narrow:
            bounds = [self.const(np.asarray(b, dtype), "clip") for b in (-127, 127)]
            q = self.node("Clip", [q, *bounds])
        out = self.node("DequantizeLinear", [q, s, zp])
        self.scales[out] = float(scale)
        return out

    def weight(self, shape: tuple[int, ...], axis: int = 0, asymmetric: bool = False) -> tuple[str, np.ndarray]:
        """Per-channel weights (along ``axis``) behind a DequantizeLinear; returns (name, scales).

        Symmetric int8 by default; ``asymmetric``: uint8 codes over [min, max] with a zero point per channel.
        """
        view = [-1 if a == axis else 1 for a in range(len(shape))]
        w = self.rng.standard_normal(shape).astype(np.float32) / np.sqrt(np.prod(shape) / shape[axis])
        w *= self.rng.uniform(0.3, 3.0, shape[axis]).reshape(view)
        rows = np.moveaxis(w, axis, 0).reshape(shape[axis], -1)
        if asymmetric:
            low, high = np.minimum(rows.min(axis=1), 0), np.maximum(rows.max(axis=1), 0)
            scales = ((high - low) / 255).astype(np.float32)
            zero = np.round(-low / scales).astype(np.uint8)
            codes = np.clip(np.round(w / scales.reshape(view)) + zero.reshape(view), 0, 255).astype(np.uint8)
        else:
            scales = (np.abs(rows).max(axis=1) / 127).astype(np.float32)
            zero = np.zeros(shape[axis], np.int8)
            codes = np.clip(np.round(w / scales.reshape(view)), -127, 127).astype(np.int8)
        out = self.node("DequantizeLinear", [self.const(codes, "w"), self.const(scales, "ws"),
                                             self.const(zero, "wz")], axis=axis)
        return out, scales

    def int32_bias(self, input_scale: float, weight_scales: np.ndarray) -> str:
        """A bias quantized the ONNX Runtime way: int32 with scale s_x·s_w, behind a DequantizeLinear."""
        scales = (np.float32(input_scale) * weight_scales).astype(np.float32)
        codes = np.round(self.rng.standard_normal(len(scales)) * 0.5 / scales).astype(np.int32)
        return self.node("DequantizeLinear", [self.const(codes, "b"), self.const(scales, "bs"),
                                              self.const(np.zeros(len(scales), np.int32), "bz")], axis=0)


@dataclass(frozen=True)
class Case:
    """A hand-built model and what the rewrite should make of each of its ops (in graph order)."""

    build: Callable[[], onnx.ModelProto]
    lowerings: dict[str, tuple[str, ...]]  # op -> lowering per site: requantize / dequantize / float
    input_shape: tuple[int, ...]


def _conv(kind: str, act: str = "uint8", symmetric: bool = False, bias: str | None = "int32",
          after: str | None = None, asymmetric_weights: bool = False) -> onnx.ModelProto:
    """One conv: ``3x3`` (pad 1), ``3x3s2`` (stride 2, pad 1), ``depthwise`` (3x3, pad 1), ``1x1``.

    ``after``: ``relu`` / ``clip`` (ReLU6) between conv and the output quantizer, ``heads`` (Reshape + Transpose
    into attention heads before it), ``residual`` (add the input, no quantizer in between), ``float`` (no output
    quantizer at all).
    """
    g = QDQGraph((1, 16, 12, 12), seed=zlib.crc32(repr((kind, act, symmetric, bias, after)).encode()))
    x = g.qdq("x", act, symmetric)
    groups = 16 if kind == "depthwise" else 1
    k = 1 if kind == "1x1" else 3
    w, w_scales = g.weight((16 if kind == "depthwise" or after == "residual" else 24, 16 // groups, k, k),
                           asymmetric=asymmetric_weights)
    inputs = [x, w]
    if bias == "int32":
        inputs.append(g.int32_bias(g.scales[x], w_scales))
    elif bias == "float":
        inputs.append(g.const(g.rng.standard_normal(w_scales.size).astype(np.float32) * 0.3, "bf"))
    pad = 0 if k == 1 else 1
    y = g.node("Conv", inputs, pads=[pad] * 4, strides=[2, 2] if kind == "3x3s2" else [1, 1], group=groups)
    if after == "relu":
        y = g.node("Relu", [y])
    elif after == "clip":
        y = g.node("Clip", [y, g.const(np.float32(0), "lo"), g.const(np.float32(6), "hi")])
    elif after == "residual":
        y = g.node("Add", [y, x])
    elif after == "heads":  # attention projections: split into heads, then quantize
        y = g.node("Reshape", [y, g.const(np.array([1, 2, 12, 144], np.int64), "shape")])
        y = g.node("Transpose", [y], perm=[0, 1, 3, 2])
    if after != "float":
        y = g.qdq(y, act, symmetric)
    return g.model(y)


def _linear(kind: str, act: str = "uint8") -> onnx.ModelProto:
    """Linear layers on tokens (1x20x32 → 48): ``matmul`` (MatMul + float Add bias, weights K×N per-channel on
    axis 1), ``gemm`` (2-D Gemm, transB=1, weights N×K per-channel on axis 0, int32 bias)."""
    shape = (1, 20, 32) if kind == "matmul" else (20, 32)
    g = QDQGraph(shape, seed=7 if kind == "matmul" else 8)
    x = g.qdq("x", act)
    if kind == "matmul":
        w, _ = g.weight((32, 48), axis=1)
        y = g.node("MatMul", [x, w])
        y = g.node("Add", [y, g.const(g.rng.standard_normal(48).astype(np.float32) * 0.2, "bf")])
    else:
        w, w_scales = g.weight((48, 32), axis=0)
        y = g.node("Gemm", [x, w, g.int32_bias(g.scales[x], w_scales)], transB=1)
    return g.model(g.qdq(y, act))


def _attention(act: str, symmetric: bool) -> onnx.ModelProto:
    """q·kᵀ of two heads, both operands quantized activations (kᵀ via Transpose of a DQ'd tensor)."""
    g = QDQGraph((1, 2, 16, 8), seed=11 if symmetric else 12)
    q = g.qdq("x", act, symmetric)
    k = g.node("Mul", ["x", g.const(np.float32(-0.7), "m")])
    k = g.qdq(g.node("Add", [k, g.const(np.float32(0.2), "a")]), act, symmetric)
    kt = g.node("Transpose", [k], perm=[0, 1, 3, 2])
    return g.model(g.qdq(g.node("MatMul", [q, kt]), act, symmetric))


def _fan_out(float_consumer: bool) -> onnx.ModelProto:
    """One conv read by two quantizers (one behind a Relu) and, optionally, by a float residual add too."""
    g = QDQGraph((1, 16, 12, 12), seed=21 if float_consumer else 22)
    x = g.qdq("x")
    w, w_scales = g.weight((16, 16, 3, 3))
    y = g.node("Conv", [x, w, g.int32_bias(g.scales[x], w_scales)], pads=[1, 1, 1, 1])
    a, b = g.qdq(y), g.qdq(g.node("Relu", [y]))
    out = g.node("Add", [a, b])
    if float_consumer:
        out = g.node("Add", [out, g.node("Add", [y, x])])
    return g.model(g.qdq(out))


def _narrow_range() -> onnx.ModelProto:
    """Our QDQ exporter's form for symmetric int8: ``QuantizeLinear → Clip(-127, 127) → DequantizeLinear``."""
    g = QDQGraph((1, 16, 12, 12), seed=31)
    x = g.qdq("x", "int8", symmetric=True, narrow=True)
    w, _ = g.weight((24, 16, 3, 3))
    return g.model(g.qdq(g.node("Conv", [x, w], pads=[1, 1, 1, 1]), "int8", symmetric=True, narrow=True))


def _float_conv() -> onnx.ModelProto:
    """A conv whose weights are plain float: not quantized, so it must stay float (and say why)."""
    g = QDQGraph((1, 8, 10, 10), seed=3)
    x = g.qdq("x")
    w = g.const(g.rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2, "wf")
    return g.model(g.qdq(g.node("Conv", [x, w], pads=[1, 1, 1, 1])))


CONV_SHAPE = (1, 16, 12, 12)
CASES: dict[str, Case] = {
    "conv3x3_u8": Case(lambda: _conv("3x3"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv3x3s2_s8": Case(lambda: _conv("3x3s2", "int8", bias=None), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "depthwise_u8": Case(lambda: _conv("depthwise"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv1x1_u8_float_bias": Case(lambda: _conv("1x1", bias="float"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv_u8_weights": Case(lambda: _conv("3x3", after="relu", asymmetric_weights=True),
                            {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv_relu_u8": Case(lambda: _conv("3x3", after="relu"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv_relu6_s8": Case(lambda: _conv("3x3", "int8", after="clip"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv_heads_u8": Case(lambda: _conv("1x1", after="heads"), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "conv_residual_u8": Case(lambda: _conv("3x3", after="residual"), {"conv2d": ("dequantize",)}, CONV_SHAPE),
    "conv_float_output_u8": Case(lambda: _conv("1x1", after="float"), {"conv2d": ("dequantize",)}, CONV_SHAPE),
    "matmul_u8": Case(lambda: _linear("matmul"), {"matmul": ("requantize",)}, (1, 20, 32)),
    "gemm_s8": Case(lambda: _linear("gemm", "int8"), {"matmul": ("requantize",)}, (20, 32)),
    "attention_u8": Case(lambda: _attention("uint8", False), {"matmul": ("requantize",)}, (1, 2, 16, 8)),
    "attention_s8_symmetric": Case(lambda: _attention("int8", True), {"matmul": ("requantize",)}, (1, 2, 16, 8)),
    "fan_out_u8": Case(lambda: _fan_out(False), {"conv2d": ("requantize",)}, CONV_SHAPE),
    "fan_out_with_float_consumer_u8": Case(lambda: _fan_out(True), {"conv2d": ("dequantize",)}, CONV_SHAPE),
    "narrow_range_s8": Case(_narrow_range, {"conv2d": ("requantize",)}, CONV_SHAPE),
    "float_weights": Case(_float_conv, {"conv2d": ("float",)}, (1, 8, 10, 10)),
}


def output_scale(model: onnx.ModelProto) -> float | None:
    """Scale of the final DequantizeLinear (one output LSB), None when the output is not quantized."""
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    if last.op_type != "DequantizeLinear":
        return None
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(inits[last.input[1]])
