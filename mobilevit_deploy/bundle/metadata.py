"""``metadata.json``: what an app needs to run a bundle without mobilevit-deploy.

Model, task, input (shape, layout, dtype, colour order, resize, mean/std), output (shape, stride, post-processing),
class names and palette, the files with checksums, the runner, and the versions of every tool that built it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
from typing import Any

FORMAT = "mobilevit-deploy bundle"
FORMAT_VERSION = 1
METADATA = "metadata.json"
REPORT = "report.json"
REFERENCE_INPUT = "reference/input.npy"
REFERENCE_OUTPUT = "reference/output.npy"

_DISTRIBUTIONS = ("mobilevit-deploy", "torch", "executorch", "apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime",
                  "onnxscript", "numpy")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def input_spec(input_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> dict[str, Any]:
    """How to turn an RGB image into the model input: the official evaluation preprocessing, spelled out."""
    return {
        "name": "input", "shape": [1, 3, input_size, input_size], "layout": "NCHW", "dtype": "float32",
        "color_order": "RGB", "value_range": [0, 255],
        "resize": {"height": input_size, "width": input_size, "interpolation": "bilinear", "keep_ratio": False},
        "mean": list(mean), "std": list(std), "normalize": "(pixel - mean) / std, per channel",
    }


def output_spec(shape: list[int], task: str, stride: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "logits", "shape": shape, "dtype": "float32", "kind": "logits"}
    if task == "segmentation":
        spec["stride"] = stride
        spec["postprocess"] = "bilinear upsample (align_corners=false) to the frame size, then argmax over axis 1"
    else:
        spec["postprocess"] = "softmax over axis 1 for probabilities; argmax for the class"
    return spec


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
