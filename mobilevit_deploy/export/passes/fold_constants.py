"""Constant folding and dead-node removal with the onnxscript optimizer (the library does this well; we do not
rewrite it): shape arithmetic and weight transposes computed at export time never run on the phone."""

from __future__ import annotations

import onnx
import onnxscript.optimizer

NAME = "fold_constants"


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnxscript.optimizer.optimize(model, num_iterations=2)
