"""Integer-only ONNX export of the I-Segmenter (issue 9 item 4): a hand-built graph whose tensors are all integers
between the input ``QuantizeLinear`` and the final ``DequantizeLinear``, bit-identical to ``quant.int_segmenter``
under ONNX Runtime and TVM (host and aarch64).

Integer ops as the two runtimes run them (onnxruntime 1.31.1, apache-tvm 0.27.0.post1; pinned by
``tests/export/test_integer_only_kernels.py``):

================================  ===========================  =============================  =====================
op (integer tensors)              ONNX Runtime                 TVM Relax frontend             used for
================================  ===========================  =============================  =====================
Div                               truncates toward zero        truncates toward zero          exact divisions only
Mod (fmod=0)                      floor modulo                 floor modulo                   floor division
MatMulInteger int8 × int8         exact (host has VNNI)        imports; weights stay int8     linear layers, q·kᵀ
MatMul int32                      yes                          yes                            p·v (int16 probs)
Add Sub Mul Neg BitwiseAnd        yes                          yes                            arithmetic, parity
Less Greater Equal, Where         yes                          yes                            min, max, clamp
Min Max Clip int64                WRONG past int32 (x86-64)    yes                            not used
ReduceSum int64                   exact below 2^53 only        yes                            row sums (< 2^41)
ReduceMax int64                   yes                          constant axes only             row maxima
Gather on an int64 table          yes                          yes                            2^k, (2^31−1) >> k
Pow int64                         yes                          refused ("float only")         not used
BitShift                          unsigned types only (ONNX)   yes                            not used
MatMul int8                       not an ONNX type             –                              not used
Quantize/DequantizeLinear         float32 x / s, half to even  the same                       the two boundaries
================================  ===========================  =============================  =====================
"""

from .export import (
    DEFAULT_OPSET,
    SUPPORTED_OPSETS,
    IntegerExportReport,
    build_integer_onnx,
    export_integer_onnx,
    onnxruntime_runner,
)
from .segmenter import INPUT_NAME, INTEGER_OUTPUT_NAME, OUTPUT_NAME

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "INTEGER_OUTPUT_NAME",
    "OUTPUT_NAME",
    "SUPPORTED_OPSETS",
    "IntegerExportReport",
    "build_integer_onnx",
    "export_integer_onnx",
    "onnxruntime_runner",
]
