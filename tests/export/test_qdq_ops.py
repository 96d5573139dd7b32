"""The ONNX form of every quantizer kind against ``quant.primitives``, bit for bit, in ONNX Runtime and in TVM.

One small graph holds every case: each point's ``quantize`` (integer codes / log indices) and ``dequantize``
(values) are graph outputs, so indices are compared, not only dequantized values. Inputs are random over many
decades plus the log quantizers' decision thresholds themselves and their float32 neighbours."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from mobilevit_deploy.export.qdq import translations
from mobilevit_deploy.export.qdq.ops import point_spec
from mobilevit_deploy.quant import PerChannel, PerHead, PerTensor, QuantKind, QuantPoint, SULQSteps, TensorRole
from mobilevit_deploy.quant.fake_quant import dequantize_point, quantize_point
from mobilevit_deploy.quant.primitives import adalog_thresholds, sulq_thresholds
from mobilevit_deploy.quiet import quiet

GELU_SHIFT = 0.16997124254703522
POINTS = [
    QuantPoint("softmax4", TensorRole.SOFTMAX, QuantKind.ADALOG, 4, PerTensor(), [1.0], log_q=20),
    QuantPoint("softmax8", TensorRole.SOFTMAX, QuantKind.ADALOG, 8, PerTensor(), [1.0], log_q=99),
    QuantPoint("log2", TensorRole.SOFTMAX, QuantKind.LOG2, 3, PerTensor(), [1.0]),
    QuantPoint("gelu", TensorRole.GELU_OUT, QuantKind.ADALOG, 4, PerTensor(), [2.5], log_q=50, shift=GELU_SHIFT),
    QuantPoint("gelu_folded", TensorRole.GELU_OUT, QuantKind.ADALOG, 6, PerTensor(), [3.0], log_q=30,
               shift=GELU_SHIFT, shift_folded=True),
    QuantPoint("per_channel_log", TensorRole.INPUT, QuantKind.ADALOG, 6, PerChannel(1), [0.5, 1.0, 2.0, 4.0],
               log_q=37),
    QuantPoint("sulq", TensorRole.SOFTMAX, QuantKind.SULQ, 4, eta=0.01, log_min=-9.7, log_max=0.01,
               sulq_steps=SULQSteps.PAPER),
    QuantPoint("sulq_forward", TensorRole.SOFTMAX, QuantKind.SULQ, 3, eta=0.005, log_min=-7.64, log_max=0.007,
               sulq_steps=SULQSteps.CODE_FORWARD),
    QuantPoint("u4", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 4, PerTensor(), [0.07], [3]),
    QuantPoint("s8", TensorRole.INPUT, QuantKind.UNIFORM_SYM, 8, PerTensor(), [0.013], [0]),
    QuantPoint("u8_per_channel", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 8, PerChannel(1), [0.01, 0.02, 0.03, 0.04],
               [0, 10, 128, 255]),
    QuantPoint("u6_per_head", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 6, PerHead(1, 2), [0.02, 0.05], [5, 40]),
]
SHAPE = (2, 4, 32, 32)


class _AllPoints(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs: list[torch.Tensor] = []
        for p in POINTS:
            spec = point_spec(p, x.shape)
            q = torch.ops.mvd_qdq.quantize(x, spec)
            outs += [q, torch.ops.mvd_qdq.dequantize(q, spec)]
        return tuple(outs)


def _inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(SHAPE, generator=gen) ** 8 * torch.where(torch.rand(SHAPE, generator=gen) < 0.8, 1.0, -3.0) * 3
    edges = [adalog_thresholds(20, 4)[1:-1], adalog_thresholds(99, 8)[1:-1], adalog_thresholds(37, 3)[1:-1],
             sulq_thresholds(-9.7, 0.01, 4)[1:-1] - 0.01]
    edges = torch.cat([torch.cat([e, torch.nextafter(e, torch.tensor(2.0)), torch.nextafter(e, torch.tensor(-1.0))])
                       for e in edges])
    flat = x.reshape(-1)
    flat[: len(edges)] = edges  # exact boundaries and their neighbours
    return x


@pytest.fixture(scope="module")
def graph() -> onnx.ModelProto:
    with quiet("torch.onnx", "onnxscript", level=logging.CRITICAL):
        program = torch.onnx.export(_AllPoints(), (torch.zeros(SHAPE),), None, dynamo=True, opset_version=21,
                                    custom_translation_table=translations(21), verbose=False)
    return program.model_proto


def _check(outputs: list[np.ndarray], x: torch.Tensor) -> None:
    for k, p in enumerate(POINTS):
        idx, values = outputs[2 * k], outputs[2 * k + 1]
        want_idx = quantize_point(x, p)
        assert np.array_equal(idx.astype(np.int64), want_idx.numpy().astype(np.int64)), f"{p.module}: indices"
        assert np.array_equal(values, dequantize_point(want_idx, p).numpy()), f"{p.module}: values"


def test_onnx_runtime_is_bit_exact(graph: onnx.ModelProto) -> None:
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Log", "Gather", "Pow"} <= ops
    assert not any(n.domain not in ("", "ai.onnx") for n in graph.graph.node)  # standard ops only
    x = _inputs()
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    _check(session.run(None, {session.get_inputs()[0].name: x.numpy()}), x)


@pytest.mark.slow
def test_tvm_imports_and_is_bit_exact(graph: onnx.ModelProto) -> None:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    executable = tvm.compile(from_onnx(graph, keep_params_in_input=False), target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    x = _inputs()
    _check([t.numpy() for t in vm["main"](tvm.runtime.tensor(x.numpy()))], x)
