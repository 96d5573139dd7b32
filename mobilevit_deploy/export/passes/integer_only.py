"""Integer-only check: every tensor between the input ``QuantizeLinear`` and the final ``DequantizeLinear`` is an
integer (or boolean) tensor, proven from ONNX type inference, not from how the graph was built.

The float boundary is exactly: float graph inputs read only by ``QuantizeLinear`` (as its data), the scales of
those quantizations and of the final dequantizations, and the outputs of ``DequantizeLinear`` nodes that are
graph outputs read by no node. Any other float tensor (an activation, a constant, a dequantization inside the
graph) is named with its producer in one error. Not in ``PASSES``: it refuses float models by design; the
integer-only exporter runs it (``run``), and ``check_integer_only`` serves anyone holding an ONNX file.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto

from mobilevit_deploy.errors import ExportError

NAME = "integer_only"
INTEGER_TYPES = frozenset({TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                           TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
                           TensorProto.INT4, TensorProto.UINT4, TensorProto.BOOL})
MAX_LISTED = 10


class IntegerOnlyError(ExportError):
    """A graph meant to be integer-only holds float tensors between its quantize and dequantize boundaries."""


@dataclass(frozen=True)
class IntegerOnlyReport:
    """What the check proved: how many tensors it typed, their element types, and the boundary nodes."""

    tensors: int
    element_types: dict[str, int]
    quantize_inputs: tuple[str, ...]
    dequantize_outputs: tuple[str, ...]
    ops: dict[str, int] = field(default_factory=dict)


def _type_name(elem: int) -> str:
    return TensorProto.DataType.Name(elem).lower()


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor after strict type inference (graph inputs, initializers, node outputs)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as err:  # inference errors are several types; one line is enough to act on
        raise IntegerOnlyError(f"ONNX type inference failed, so the integer-only check cannot run: "
                               f"{str(err).strip().splitlines()[0]}",
                               hint="run onnx.checker.check_model on the graph to find the malformed node") from err
    graph = inferred.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types


def _allowed_floats(graph: onnx.GraphProto, consumers: dict[str, list[onnx.NodeProto]]
                    ) -> tuple[set[str], list[str], list[str]]:
    """The float boundary: (allowed tensors, input QuantizeLinear data tensors, final DequantizeLinear outputs)."""
    outputs = {o.name for o in graph.output}
    allowed: set[str] = set()
    quantized, dequantized = [], []
    for inp in graph.input:
        readers = consumers.get(inp.name, [])
        if readers and all(n.op_type == "QuantizeLinear" and n.input[0] == inp.name for n in readers):
            allowed.add(inp.name)
            quantized.append(inp.name)
            allowed.update(n.input[1] for n in readers)
    for node in graph.node:
        out = node.output[0]
        if node.op_type == "DequantizeLinear" and out in outputs and not consumers.get(out):
            allowed.update({out, node.input[1]})
            dequantized.append(out)
    return allowed, quantized, dequantized


def check_integer_only(model: onnx.ModelProto) -> IntegerOnlyReport:
    """Prove the graph integer-only between its boundaries, or raise ``IntegerOnlyError`` naming every float tensor
    (up to ``MAX_LISTED``) with the node that produces it."""
    graph = model.graph
    if any(a.type == onnx.AttributeProto.GRAPH for n in graph.node for a in n.attribute):
        raise IntegerOnlyError("the integer-only check does not look into subgraphs (If/Loop/Scan)",
                               hint="export without control flow")
    types = _element_types(model)
    producer = {o: n for n in graph.node for o in n.output if o}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                consumers[name].append(node)
    allowed, quantized, dequantized = _allowed_floats(graph, consumers)
    if not quantized or not dequantized:
        raise IntegerOnlyError(
            "not an integer-only graph: it needs float inputs read only by QuantizeLinear and outputs from a "
            f"final DequantizeLinear (found {len(quantized)} quantized input(s), {len(dequantized)} dequantized "
            "output(s))", hint="export with mobilevit_deploy.export.integer_only")

    tensors = dict.fromkeys([*(i.name for i in graph.input), *(t.name for t in graph.initializer),
                             *(o for n in graph.node for o in n.output if o), *(o.name for o in graph.output)])
    untyped = [t for t in tensors if t not in types]
    if untyped:
        raise IntegerOnlyError(f"type inference left {len(untyped)} tensor(s) untyped, e.g. {untyped[0]!r}",
                               hint="give the graph static shapes and standard ops")
    floats = [t for t in tensors if types[t] not in INTEGER_TYPES and t not in allowed]
    if floats:
        raise IntegerOnlyError(
            f"{len(floats)} float tensor(s) between the input QuantizeLinear and the final DequantizeLinear: "
            + "; ".join(_describe(t, types[t], producer, consumers, graph) for t in floats[:MAX_LISTED])
            + (f"; and {len(floats) - MAX_LISTED} more" if len(floats) > MAX_LISTED else ""),
            hint="compute these with integer ops (the graph must stay integer from quantize to dequantize)")
    counts: dict[str, int] = defaultdict(int)
    for t in tensors:
        counts[_type_name(types[t])] += 1
    ops: dict[str, int] = defaultdict(int)
    for node in graph.node:
        ops[node.op_type] += 1
    return IntegerOnlyReport(len(tensors), dict(sorted(counts.items())), tuple(quantized), tuple(dequantized),
                             dict(sorted(ops.items())))


def _describe(name: str, elem: int, producer: dict[str, onnx.NodeProto],
              consumers: dict[str, list[onnx.NodeProto]], graph: onnx.GraphProto) -> str:
    node = producer.get(name)
    if node is not None:
        return f"{name!r} ({_type_name(elem)}) from {node.op_type} node {node.name or '<unnamed>'!r}"
    kind = "graph input" if name in {i.name for i in graph.input} else "initializer"
    readers = ", ".join(f"{n.op_type} {n.name or '<unnamed>'!r}" for n in consumers.get(name, [])[:2]) or "nothing"
    return f"{name!r} ({_type_name(elem)} {kind}) read by {readers}"


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """The check as an export pass: the model unchanged, or ``IntegerOnlyError``."""
    check_integer_only(model)
    return model
