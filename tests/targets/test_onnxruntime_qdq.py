"""ONNX Runtime's static quantization wrapper: a QDQ model out, clear errors for bad requests, nothing half-written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.onnxruntime_qdq import quantize_static_qdq


@pytest.fixture
def float_conv(tmp_path: Path) -> Path:
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    return path


def test_writes_a_qdq_model_with_per_channel_int8_weights(float_conv: Path) -> None:
    calibration = [np.random.default_rng(s).standard_normal((1, 3, 8, 8)).astype(np.float32) for s in range(2)]
    out = quantize_static_qdq(float_conv, float_conv.with_name("qdq.onnx"), calibration)
    model = onnx.load(str(out))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 1 and ops["QuantizeLinear"] == 2 and ops["DequantizeLinear"] == 3
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                     and inits[n.input[0]].ndim == 4)
    assert inits[weight_dq.input[0]].dtype == np.int8 and inits[weight_dq.input[1]].shape == (4,)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"activations": "int4"}, "unknown activation type 'int4'"),
    ({"calibration": []}, "no calibration inputs given"),
])
def test_bad_requests_are_refused_without_output(float_conv: Path, kwargs: dict, message: str) -> None:
    args = {"calibration": [np.zeros((1, 3, 8, 8), np.float32)], **kwargs}
    out = float_conv.with_name("qdq.onnx")
    with pytest.raises(DeployError, match=message):
        quantize_static_qdq(float_conv, out, args.pop("calibration"), **args)
    assert not out.exists()
