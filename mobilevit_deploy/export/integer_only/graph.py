"""A small ONNX graph builder for integer-only graphs, written by hand with ``onnx.helper``.

Why not torch.export: the integer kernels check their inputs with data-dependent Python (``int(x.max())``) and
floor with ``torch.div(rounding_mode="floor")``, which the exporters translate with float casts. Building the
graph ourselves fixes every op and every element type. The builder tracks the element type of each tensor and
refuses mixed-type arithmetic as it is written, so a wrong emitter fails at its own line, not in ONNX Runtime.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import helper, numpy_helper

IR_VERSION = 10  # onnx 1.23's default (IR 14) is refused by ONNX Runtime 1.31

_BOOL_OUT = frozenset({"Less", "Greater", "Equal", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not"})
_SAME_TYPE = frozenset({"Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "BitwiseAnd", "BitwiseOr", "MatMul",
                        "Less", "Greater", "Equal", "LessOrEqual", "GreaterOrEqual"})


class GraphBuilder:
    """Nodes, initializers and the numpy element type of every tensor, with names scoped like module paths."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.dtypes: dict[str, np.dtype] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}  # graph inputs and constants only
        self._inputs: list[onnx.ValueInfoProto] = []
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._scope: list[str] = []
        self._counts: Counter[str] = Counter()

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Names created inside start with ``name.`` (module paths: ``encoder_blocks.3.attn.shiftmax``)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def _fresh(self, base: str) -> str:
        stem = ".".join([*self._scope, base])
        self._counts[stem] += 1
        n = self._counts[stem]
        return stem if n == 1 else f"{stem}_{n}"

    def input(self, name: str, dtype: np.dtype | type, shape: Sequence[int]) -> str:
        dtype = np.dtype(dtype)
        self._inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), shape))
        self.dtypes[name], self.shapes[name] = dtype, tuple(shape)
        return name

    def const(self, value: np.ndarray | int | float, dtype: np.dtype | type | None = None,
              name: str | None = None) -> str:
        """An initializer; unnamed constants with equal type, shape and bytes are shared."""
        array = np.array(value, dtype=dtype, order="C")  # (np.ascontiguousarray would make a scalar 1-D)
        key = (array.dtype.str, array.shape, array.tobytes())
        if name is None and key in self._consts:
            return self._consts[key]
        tensor_name = self._fresh(name or f"const_{array.dtype.name}")
        self.initializers.append(numpy_helper.from_array(array, tensor_name))
        self.dtypes[tensor_name], self.shapes[tensor_name] = array.dtype, array.shape
        if name is None:
            self._consts[key] = tensor_name
        return tensor_name

    def dtype(self, name: str) -> np.dtype:
        return self.dtypes[name]

    def op(self, op_type: str, *inputs: str, dtype: np.dtype | type | None = None, out_name: str | None = None,
           **attrs: object) -> str:
        """Append one node with one output and return the output's name (``out_name``, or one made from the scope
        and the op); ``dtype`` defaults from the op."""
        types = [self.dtypes[i] for i in inputs]
        if op_type in _SAME_TYPE and len(set(types)) > 1:
            raise TypeError(f"{op_type} mixes element types {[t.name for t in types]} ({', '.join(inputs)})")
        if dtype is not None:
            out = np.dtype(dtype)
        elif op_type == "Cast":
            out = helper.tensor_dtype_to_np_dtype(int(attrs["to"]))  # type: ignore[call-overload]
        elif op_type in _BOOL_OUT:
            out = np.dtype(np.bool_)
        elif op_type == "MatMulInteger":
            out = np.dtype(np.int32)
        elif op_type == "Where":
            out = types[1]
        else:
            out = types[0]
        node_name = self._fresh(op_type)
        output = out_name or node_name
        if output in self.dtypes:
            raise ValueError(f"tensor name {output} is taken")
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=node_name, **attrs))
        self.dtypes[output] = out
        return output

    def cast(self, x: str, dtype: np.dtype | type) -> str:
        """``x`` as ``dtype`` (no node when it already is)."""
        dtype = np.dtype(dtype)
        if self.dtypes[x] == dtype:
            return x
        return self.op("Cast", x, to=helper.np_dtype_to_tensor_dtype(dtype))

    def model(self, outputs: Sequence[tuple[str, Sequence[int]]], opset: int, name: str,
              doc: str = "") -> onnx.ModelProto:
        """The ``ModelProto`` with ``outputs`` (tensor name, static shape) as its graph outputs."""
        graph_outputs = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(self.dtypes[o]), shape)
                         for o, shape in outputs]
        graph = helper.make_graph(self.nodes, name, self._inputs, graph_outputs, self.initializers, doc_string=doc)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION,
                                 producer_name="mobilevit-deploy")
