"""Op-support scans: which ops of a model will not run on a target, all at once, with the module each came from.

The per-target scans (``tvm_support``, ``onnxruntime_support``, ``executorch_support``) ask each toolchain's own
tables, so a scan and a real compile cannot disagree; this module holds what they share: the report types, the
grouping of per-node findings into a report, and the walk over ONNX nodes with their PyTorch module paths.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

ROOT_MODULE = ""
"""Module path of ops the top-level module runs itself (torch names it the empty string too)."""

_PATHS_SHOWN = 3


@dataclass(frozen=True)
class UnsupportedOp:
    op: str
    """``aten.expand_copy.default`` for ExecuTorch; for ONNX targets the op type, as ``domain:Type`` if not ai.onnx."""
    count: int
    module_paths: tuple[str, ...]
    """Dotted PyTorch module paths the nodes came from, deduplicated, in graph order ("" is the root module)."""
    reason: str


@dataclass(frozen=True)
class SupportReport:
    target: str
    """``tvm``, ``executorch`` or ``onnxruntime``."""
    total_ops: int
    op_types: int
    unsupported: tuple[UnsupportedOp, ...]

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "total_ops": self.total_ops,
            "op_types": self.op_types,
            "unsupported": [
                {"op": u.op, "count": u.count, "module_paths": list(u.module_paths), "reason": u.reason}
                for u in self.unsupported
            ],
        }

    def format_table(self) -> str:
        """A few lines for a terminal: one per unsupported op, then where it came from."""
        if self.ok:
            return f"{self.target}: all {self.op_types} op types supported ({self.total_ops} ops)"
        bad_nodes = sum(u.count for u in self.unsupported)
        lines = [f"{self.target}: {len(self.unsupported)} of {self.op_types} op types not supported "
                 f"({bad_nodes} of {self.total_ops} ops)"]
        width = max(len(u.op) for u in self.unsupported)
        for u in self.unsupported:
            lines.append(f"  {u.op:<{width}}  {u.count:>5}  {u.reason}")
            shown = [p or "(root)" for p in u.module_paths[:_PATHS_SHOWN]]
            more = len(u.module_paths) - len(shown)
            lines.append(f"  {'':<{width}}         in {', '.join(shown)}" + (f" (+{more} more)" if more else ""))
        return "\n".join(lines)


@dataclass(frozen=True)
class NodeFinding:
    """One examined op node: its op name, where it came from, and why it will not run (``None`` if it will)."""

    op: str
    module_path: str
    reason: str | None = None


def build_report(target: str, findings: Iterable[NodeFinding]) -> SupportReport:
    """Group per-node findings by op, keeping graph order for ops and for their module paths."""
    total = 0
    op_names: set[str] = set()
    counts: dict[str, int] = {}
    paths: dict[str, dict[str, None]] = {}
    reasons: dict[str, dict[str, None]] = {}
    for f in findings:
        total += 1
        op_names.add(f.op)
        if f.reason is None:
            continue
        counts[f.op] = counts.get(f.op, 0) + 1
        paths.setdefault(f.op, {})[f.module_path] = None
        reasons.setdefault(f.op, {})[f.reason] = None
    unsupported = tuple(UnsupportedOp(op, counts[op], tuple(paths[op]), "; ".join(reasons[op])) for op in counts)
    return SupportReport(target, total, len(op_names), unsupported)


def onnx_op_name(domain: str, op_type: str) -> str:
    """``Conv`` for the default domain, ``com.example:Mystery`` otherwise (ONNX Runtime's spelling)."""
    return op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def onnx_module_path(node: Any) -> str:
    """The PyTorch module a node of a dynamo-exported ONNX model came from, from the exporter's node metadata.

    ``pkg.torch.onnx.name_scopes`` lists the module scopes outermost first and ends with the FX node's own name,
    so the module path is the entry before last; ``namespace`` (``path: class/…/node: op``) is the fallback.
    Nodes without exporter metadata (hand-built models, rewriter output without provenance) get the root path.
    """
    props = {p.key: p.value for p in node.metadata_props}
    scopes = props.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            names = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            names = None
        if isinstance(names, list) and len(names) >= 2:
            return str(names[-2])
    namespace = props.get("namespace")
    if namespace:
        parts = namespace.split("/")
        if len(parts) >= 2:
            return parts[-2].split(":", 1)[0].strip()
    return ROOT_MODULE


def walk_onnx_nodes(graph: Any) -> Iterator[Any]:
    """Every node of an ONNX graph or function in order, each followed by the nodes of its subgraphs (If/Loop/Scan)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from walk_onnx_nodes(attr.g)
            for sub in attr.graphs:
                yield from walk_onnx_nodes(sub)
