"""Export to ONNX, verified against PyTorch (the export passes of issue 3 grow here)."""

from .onnx_export import DEFAULT_OPSET, SUPPORTED_OPSETS, export_onnx, report_path, torch_to_onnx
from .passes import PASS_NAMES
from .report import ExportReport

__all__ = [
    "DEFAULT_OPSET",
    "PASS_NAMES",
    "SUPPORTED_OPSETS",
    "ExportReport",
    "export_onnx",
    "report_path",
    "torch_to_onnx",
]
