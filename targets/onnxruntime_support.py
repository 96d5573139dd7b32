"""Which ONNX nodes ONNX Runtime's CPU execution provider has no kernel for, read from its kernel registry.

ONNX Runtime fails a session at the first node it cannot place; this scan lists them all. It follows ONNX
Runtime's own lookup: a node's opset is the ``since_version`` of its schema at the model's opset for its
domain, a kernel must cover that version and the node's input/output types (float16 falls back to float kernels
through inserted casts), ops without a kernel but with an ONNX function body are expanded, Constant nodes become
initializers, and calls of the model's local functions are inlined. Not modelled: the types inside an expanded
function body (a bfloat16 Relu passes here, but its expansion has no bfloat16 Max kernel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import onnx
import onnx.defs

from .support import NodeFinding, SupportReport, build_report, onnx_module_path, onnx_op_name, walk_onnx_nodes

_CPU = "CPUExecutionProvider"
_ONNX_DOMAINS = frozenset({"", "ai.onnx.ml", "ai.onnx.preview.training"})
"""Domains whose schemas the onnx package knows: an op it has no schema for there is not an ONNX op at all."""


@dataclass(frozen=True)
class _Kernel:
    first: int
    last: int
    types: dict[str, frozenset[str]]

    def covers(self, version: int) -> bool:
        return self.first <= version <= self.last

    def accepts(self, bound: dict[str, set[str]]) -> bool:
        return all(name not in self.types or actual <= self.types[name] for name, actual in bound.items())


@dataclass(frozen=True)
class _Context:
    kernels: dict[tuple[str, str], list[_Kernel]]
    kernel_domains: frozenset[str]
    functions: dict[tuple[str, str], onnx.FunctionProto]


def scan_onnx_for_onnxruntime(model: onnx.ModelProto) -> SupportReport:
    """Report every node (subgraphs and local functions included) ONNX Runtime's CPU EP cannot run."""
    from onnxruntime.capi.onnxruntime_pybind11_state import get_all_opkernel_def

    kernels: dict[tuple[str, str], list[_Kernel]] = {}
    for k in get_all_opkernel_def():
        if k.provider == _CPU:
            types = {name: frozenset(allowed) for name, allowed in k.type_constraints.items()}
            kernels.setdefault((k.domain, k.op_name), []).append(_Kernel(*k.version_range, types))
    context = _Context(kernels, frozenset(d for d, _ in kernels),
                       {(_domain(f.domain), f.name): f for f in model.functions})
    findings = _findings(walk_onnx_nodes(model.graph), _opsets(model.opset_import), _value_types(model), context,
                         caller_path=None)
    return build_report("onnxruntime", findings)


def _findings(nodes: Iterable[Any], opsets: dict[str, int], types: dict[str, str], context: _Context,
              caller_path: str | None) -> Iterator[NodeFinding]:
    for node in nodes:
        domain = _domain(node.domain)
        path = onnx_module_path(node) if caller_path is None else caller_path
        function = context.functions.get((domain, node.op_type))
        if function is not None:  # ONNX Runtime inlines local functions; their names are local, so no types
            yield from _findings(walk_onnx_nodes(function), _opsets(function.opset_import), {}, context, path)
            continue
        reason = _reason(node, domain, opsets, types, context)
        yield NodeFinding(onnx_op_name(domain, node.op_type), path, reason)


def _reason(node: Any, domain: str, opsets: dict[str, int], types: dict[str, str], context: _Context) -> str | None:
    """Why ONNX Runtime's CPU EP cannot run ``node``, or ``None`` if it can."""
    if domain == "" and node.op_type == "Constant":
        return None
    opset = opsets.get(domain)
    if opset is None:
        return f"domain {domain or 'ai.onnx'!r} is not in the model's opset imports"
    schema = _schema(node.op_type, opset, domain)
    if schema is None and domain in _ONNX_DOMAINS:
        return f"not an ONNX op at opset {opset}"
    version = schema.since_version if schema is not None else opset
    expandable = schema is not None and (schema.has_function or schema.has_context_dependent_function)
    candidates = [k for k in context.kernels.get((domain, node.op_type), []) if k.covers(version)]
    if not candidates:
        if schema is not None and schema.deprecated:
            return f"deprecated since opset {version}"
        if expandable:
            return None
        if domain not in context.kernel_domains:
            return f"ONNX Runtime has no kernels for domain {domain!r}"
        return f"no CPU kernel for opset {version}" if (domain, node.op_type) in context.kernels else "no CPU kernel"
    if schema is None:
        return None
    bound = _bind_types(node, schema, types)
    as_float = {name: {"tensor(float)" if t == "tensor(float16)" else t for t in ts} for name, ts in bound.items()}
    if expandable or any(k.accepts(bound) or k.accepts(as_float) for k in candidates):
        return None
    return "no CPU kernel for " + ", ".join(f"{name}={'|'.join(sorted(ts))}" for name, ts in sorted(bound.items()))


def _bind_types(node: Any, schema: onnx.defs.OpSchema, types: dict[str, str]) -> dict[str, set[str]]:
    """The actual types each of the schema's type constraints takes at this node (names with unknown types skipped)."""
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    bound: dict[str, set[str]] = {}
    for params, names in ((schema.inputs, node.input), (schema.outputs, node.output)):
        for i, name in enumerate(names):
            if i < len(params):
                param = params[i]
            elif params and params[-1].option == variadic:
                param = params[-1]
            else:
                break
            if name and name in types:
                bound.setdefault(param.type_str, set()).add(types[name])
    return bound


def _schema(op_type: str, opset: int, domain: str) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _opsets(imports: Iterable[onnx.OperatorSetIdProto]) -> dict[str, int]:
    return {_domain(o.domain): o.version for o in imports}


def _value_types(model: onnx.ModelProto) -> dict[str, str]:
    """``tensor(float)``-style type strings (ONNX Runtime's spelling) of every value whose type is known."""
    # Inference only adds what the exporter's value_info lacks; a model it chokes on is still scanned.
    with contextlib.suppress(Exception):
        model = onnx.shape_inference.infer_shapes(model)
    types: dict[str, str] = {}

    def visit(graph: onnx.GraphProto) -> None:
        for init in graph.initializer:
            types[init.name] = f"tensor({_elem_name(init.data_type)})"
        for info in (*graph.input, *graph.output, *graph.value_info):
            text = _type_string(info.type)
            if text is not None:
                types[info.name] = text
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return types


def _type_string(t: onnx.TypeProto) -> str | None:
    kind = t.WhichOneof("value")
    if kind == "tensor_type" and t.tensor_type.elem_type:
        return f"tensor({_elem_name(t.tensor_type.elem_type)})"
    if kind == "sequence_type":
        inner = _type_string(t.sequence_type.elem_type)
        return f"seq({inner})" if inner else None
    if kind == "optional_type":
        inner = _type_string(t.optional_type.elem_type)
        return f"optional({inner})" if inner else None
    return None


def _elem_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type).lower()
