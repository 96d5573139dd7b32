"""Store ≤4-bit weight codes as ONNX INT4/UINT4 (opset ≥ 21): half the bytes of int8 storage, same values.

The exporter writes every weight's codes as an int8/uint8 initializer feeding a ``DequantizeLinear``; this pass
retypes the named ones (and their zero points, which must share the type) in place. Values are unchanged, so the
graph computes the same numbers; only the storage shrinks.
"""

from __future__ import annotations

import ml_dtypes
import onnx
from onnx import TensorProto, numpy_helper

from ..passes._graph import GraphIndex, remove_unused_initializers

INT4_OPSET = 21
_NARROW = {TensorProto.INT8: ml_dtypes.int4, TensorProto.UINT8: ml_dtypes.uint4}


def _as_4bit(tensor: TensorProto, name: str) -> TensorProto:
    """The same values as a packed (two per byte) INT4/UINT4 tensor."""
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(_NARROW[tensor.data_type]), name)


def store_weights_as_int4(model: onnx.ModelProto, names: set[str]) -> int:
    """Retype the initializers in ``names`` that feed a DequantizeLinear to INT4/UINT4; return how many. A zero
    point of all zeros (symmetric weights) is dropped, which DequantizeLinear reads as zero of the input's type."""
    graph = model.graph
    index = GraphIndex(graph)
    done = 0
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in names]:
        codes = index.initializers.get(node.input[0])
        if codes is None or codes.data_type not in _NARROW:
            continue
        graph.initializer.remove(codes)
        graph.initializer.append(_as_4bit(codes, codes.name))
        if len(node.input) > 2 and node.input[2]:  # zero points may be shared constants: this node gets its own
            zero = index.initializers[node.input[2]]
            if not numpy_helper.to_array(zero).any():
                del node.input[2]
            else:
                node.input[2] = f"{codes.name}_zero_point"
                graph.initializer.append(_as_4bit(zero, node.input[2]))
        done += 1
    remove_unused_initializers(graph)
    return done
