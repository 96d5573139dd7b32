"""ONNX Runtime's own static quantization of a float ONNX model, in QDQ format: the peer int8 model.

Issue 8 compares our int8 artifacts against ONNX Runtime's int8 of the same model, and a QDQ graph written by a
third party is also the test that the TVM integer rewrite is generic over QDQ graphs, not tuned to our exporter.
Defaults are ONNX Runtime's recommended CPU setting: U8 activations, S8 per-channel weights, MinMax calibration.
The calibration inputs come from the caller (no data is fetched), and the output is written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.quiet import quiet

ACTIVATION_TYPES = ("uint8", "int8")


def quantize_static_qdq(float_onnx: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray], *,
                        activations: str = "uint8", per_channel: bool = True,
                        exclude_op_types: Sequence[str] = ()) -> Path:
    """Quantize ``float_onnx`` with ``onnxruntime.quantization.quantize_static`` (QDQ) and write ``out_path``.

    ``calibration`` yields float32 inputs for the model's single input; ``exclude_op_types`` leaves those ops
    (e.g. ``("Softmax",)``, ONNX Runtime's best setting for attention) in float.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if activations not in ACTIVATION_TYPES:
        raise DeployError(f"unknown activation type '{activations}'", hint=f"use one of {', '.join(ACTIVATION_TYPES)}")
    float_onnx, out_path = Path(float_onnx), Path(out_path)
    model = onnx.load(str(float_onnx))
    if len(model.graph.input) != 1:
        raise DeployError(f"{float_onnx.name} has {len(model.graph.input)} inputs; static quantization here "
                          "takes single-input models")
    input_name = model.graph.input[0].name
    batches = [{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in calibration]
    if not batches:
        raise DeployError("no calibration inputs given", hint="pass at least one input array")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    exclude = [n.name for n in model.graph.node if n.op_type in set(exclude_op_types)]
    act_type = QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8
    with atomic_path(out_path) as tmp, quiet("root", level=logging.ERROR):
        quantize_static(model, tmp, _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=act_type, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    return out_path
