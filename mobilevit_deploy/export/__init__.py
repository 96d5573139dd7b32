"""Export to ONNX, verified against PyTorch (the export passes of issue 3 grow here)."""

from .onnx_export import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
