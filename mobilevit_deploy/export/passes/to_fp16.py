"""Convert weights and activations to float16 with ONNX Runtime's converter (inputs and outputs stay float32 so
callers do not change). Halves the file and the memory traffic on ARM cores with fp16 arithmetic."""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

NAME = "to_fp16"


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
