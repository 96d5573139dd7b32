"""Integer code from QDQ ONNX for TVM: a Relax rewrite from float-simulated quantization to int8/int32 kernels.

``from_onnx`` imports QuantizeLinear/DequantizeLinear as ``relax.quantize``/``dequantize`` around float conv2d and
matmul, so a "quantized" TVM build computes in float. ``QDQToInteger`` (a module pass, also callable as
``lower_qdq_to_integer``) rewrites ``dequantize → conv2d/matmul [+ bias] [relu/clip/layout ops] → quantize``
into integer conv2d/matmul with int32 accumulation and fixed-point requantization, and reports every conv/matmul
whose result still leaves in float (dequantized accumulator) or that stayed float, with the reason.
``inspection`` counts integer ops in the IR and dot-product instructions in a library.
"""

from .report import IntegerReport, SiteReport
from .rewrite import QDQToInteger, lower_qdq_to_integer

__all__ = ["IntegerReport", "QDQToInteger", "SiteReport", "lower_qdq_to_integer"]
