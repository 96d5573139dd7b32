"""Quantized ONNX (QDQ) export from a quantization table (issue 8 item 1).

``export_qdq_onnx(model, table, output, input_size)`` writes a standard-ONNX model in which every table point is
explicit: uniform points as QuantizeLinear/DequantizeLinear (int8/uint8, INT4 weights at opset ≥ 21), log2, AdaLog
and SULQ as small subgraphs of standard ops that reproduce ``quant.primitives`` bit for bit. ONNX Runtime and TVM's
Relax ONNX frontend both run it. ``qdq_module`` is the ``apply_table`` factory of the export modules;
``translations(opset)`` the exporter's table for the two ``mvd_qdq`` custom ops.
"""

from .export import DEFAULT_OPSET, SUPPORTED_OPSETS, TOLERANCE, QDQReport, export_qdq_onnx
from .modules import qdq_module
from .onnx_ops import translations
from .verify import QDQAgreement, compare_with_fake_quant

__all__ = [
    "DEFAULT_OPSET",
    "SUPPORTED_OPSETS",
    "TOLERANCE",
    "QDQAgreement",
    "QDQReport",
    "compare_with_fake_quant",
    "export_qdq_onnx",
    "qdq_module",
    "translations",
]
