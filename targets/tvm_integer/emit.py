"""Emit the Relax code of one planned integer site: operand conversion, int32 conv2d/matmul, epilogue.

The conv2d/matmul stay Relax ops with ``out_dtype="int32"``: ``LegalizeOps`` lowers them through TOPI to a loop
nest over int8 (or int16) inputs with int32 accumulation, which LLVM can map to dot-product instructions on
aarch64, and a later tuning step sees ordinary conv2d/matmul workloads. The elementwise steps around them are one
TE kernel each (``kernels``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tvm import relax

from . import kernels
from .fixed_point import Requantizer
from .operands import Convert, Operand
from .plan import Dequantize, IntegerSite, SiteOutput

Lookup = Callable[[relax.Expr], relax.Expr]


def _vector(values: np.ndarray, dtype: str) -> relax.Expr:
    """A per-channel constant as a 1-D tensor (length 1 when every channel has the same value)."""
    flat = values.reshape(-1).astype(dtype)
    return relax.const(flat[:1] if np.all(flat == flat[0]) else np.ascontiguousarray(flat), dtype)


def _operand(bb: relax.BlockBuilder, operand: Operand, lookup: Lookup) -> relax.Expr:
    """The integer input of the op: a constant, or the (remapped) activation with its layout ops and conversion."""
    if operand.constant is not None:
        return relax.const(operand.constant, str(operand.constant.dtype))
    activation = operand.activation
    assert activation is not None
    x = lookup(activation.source)
    for call in activation.layout:
        x = bb.emit(relax.Call(call.op, [x, *call.args[1:]], call.attrs))
    if operand.convert is Convert.U8_TO_S8:
        x = bb.emit_te(kernels.convert_to_int8, x, primfunc_name_hint="uint8_to_int8")
    elif operand.convert is Convert.WIDEN:
        x = bb.emit_te(kernels.subtract_zero_point, x, activation.zero_point, primfunc_name_hint="subtract_zero_point")
    return x


def _accumulate(bb: relax.BlockBuilder, site: IntegerSite, lhs: relax.Expr, rhs: relax.Expr) -> relax.Expr:
    """The int32 conv2d or matmul, with the convolution's padding done by the zero point when needed."""
    if site.op == "matmul":
        return bb.emit(relax.op.matmul(lhs, rhs, out_dtype="int32"))
    attrs = site.call.attrs
    padding = [int(p) for p in attrs.padding]
    if site.pad_with_zero_point:  # ONNX pads the float input with 0.0, i.e. the integer input with its zero point
        top, left, bottom, right = padding
        lhs = bb.emit(relax.op.nn.pad(lhs, [0, 0, 0, 0, top, bottom, left, right],
                                      pad_value=float(site.lhs.zero_point)))
        padding = [0, 0, 0, 0]
    return bb.emit(relax.op.nn.conv2d(lhs, rhs, strides=[int(s) for s in attrs.strides], padding=padding,
                                      dilation=[int(d) for d in attrs.dilation], groups=int(attrs.groups),
                                      data_layout="NCHW", kernel_layout="OIHW", out_layout="NCHW",
                                      out_dtype="int32"))


def _epilogue(bb: relax.BlockBuilder, site: IntegerSite, output: SiteOutput, acc: relax.Expr) -> relax.Expr:
    """The requantize or dequantize kernel call that turns the accumulator into ``output``."""
    epilogue, axis = output.epilogue, site.channel_axis
    if isinstance(epilogue, Requantizer):
        return bb.call_te(
            kernels.requantize, acc, _vector(epilogue.multiplier, "int64"), _vector(epilogue.addend, "int64"),
            _vector(epilogue.shift, "int64"), axis, epilogue.qmin, epilogue.qmax, epilogue.dtype,
            primfunc_name_hint="requantize")
    assert isinstance(epilogue, Dequantize)
    bias = epilogue.bias if epilogue.bias is not None else np.zeros(1, np.int32)
    return bb.call_te(
        kernels.dequantize_accumulator, acc, _vector(bias, "int32"), _vector(epilogue.scale, "float32"), axis,
        primfunc_name_hint="dequantize_accumulator")


def emit_accumulator(bb: relax.BlockBuilder, site: IntegerSite, lookup: Lookup) -> relax.Var:
    """Emit the operand conversions and the int32 conv2d/matmul of ``site``; ``lookup`` maps original vars."""
    return _accumulate(bb, site, _operand(bb, site.lhs, lookup), _operand(bb, site.rhs, lookup))


def emit_output(bb: relax.BlockBuilder, site: IntegerSite, output: SiteOutput, acc: relax.Var,
                is_output: bool) -> relax.Var:
    """Emit the epilogue of ``output``; return the var that takes the place of ``output.var``.

    ``is_output`` emits a dataflow output (the original var was visible outside the dataflow block).
    """
    result = _epilogue(bb, site, output, acc)
    for call in output.layout:  # elements move, values stay: the quantize's input layout
        result = relax.Call(call.op, [bb.emit(result), *call.args[1:]], call.attrs)
    return bb.emit_output(result) if is_output else bb.emit(result)
