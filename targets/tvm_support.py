"""Which ONNX ops TVM's Relax ONNX frontend cannot import, read from the frontend's own converter map.

``tvm.relax.frontend.onnx.from_onnx`` stops at the first check with only the op names; this scan lists every op
with counts and module paths. The frontend picks converters by op type alone (it ignores the node's domain and
falls back to its oldest converter for old opsets), so the decision is: is the op type in the map?
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from .support import NodeFinding, SupportReport, build_report, onnx_module_path, onnx_op_name, walk_onnx_nodes

# ``ONNXGraphImporter._check_for_unsupported_ops`` accepts these besides the converter map: the importer builds
# them itself (Constant is also in the map).
_HANDLED_BY_IMPORTER = frozenset({"If", "Constant"})
# Domains whose ops the map is written for: ONNX and the onnxruntime contrib ops (FastGelu, Attention, ...).
_KNOWN_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})

NO_CONVERTER = "no converter in TVM's ONNX frontend"


def scan_onnx_for_tvm(model: onnx.ModelProto) -> SupportReport:
    """Report every node whose op TVM 0.27's Relax ONNX frontend has no converter for (subgraphs included)."""
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map  # slow import: only when scanning

    supported = set(_get_convert_map()) | _HANDLED_BY_IMPORTER
    return build_report("tvm", _findings(model, frozenset(supported)))


def _findings(model: onnx.ModelProto, supported: frozenset[str]) -> Iterator[NodeFinding]:
    for node in walk_onnx_nodes(model.graph):
        reason = None
        if node.op_type not in supported:
            reason = NO_CONVERTER
        elif node.domain not in _KNOWN_DOMAINS:
            reason = f"TVM ignores the domain {node.domain!r} and would import it as the standard {node.op_type}"
        yield NodeFinding(onnx_op_name(node.domain, node.op_type), onnx_module_path(node), reason)
