"""Strict shape inference and a full checker run: every tensor gets a static shape in the file (TVM, ONNX Runtime
and NPU converters plan memory from them), and a malformed graph fails here rather than on the phone."""

from __future__ import annotations

import onnx

NAME = "infer_shapes"


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    onnx.checker.check_model(model, full_check=True)
    return model
