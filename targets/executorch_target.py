"""PyTorch → ExecuTorch ``.pte`` with XNNPACK delegation, a delegation report, and a host runner for tests.

Pipeline: ``torch.export.export`` (static 1×3×S×S input) → ``to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` and the rewrites of ``executorch_passes`` → ``to_executorch`` → ``.pte``. The same ``.pte``
runs on x86 and arm64. Ops XNNPACK does not take stay in the portable/optimized kernels; the report names them
because each one splits the graph into another delegated subgraph and costs a copy at its boundaries. It also
says how the partition looked before the rewrites (tagged on the same edge program, not a second export).

Lowering is slow (tens of seconds even for a small model, independent of input size): most of it is
``run_decompositions`` and XNNPACK's preprocess passes.
"""

from __future__ import annotations

import collections
import operator
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.quiet import quiet

from .artifact import Artifact

_DELEGATE_CALL = "executorch_call_delegate"


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _op_name(node: torch.fx.Node) -> str:
    """``aten.expand_copy.default``-style name (the spelling of the op-support scan), also for edge-dialect ops."""
    target = getattr(node.target, "_op", node.target)  # EdgeOpOverload wraps the aten OpOverload
    return str(target) if hasattr(target, "_schema") else getattr(target, "__name__", str(target))


def delegation_report(graph_module: torch.fx.GraphModule) -> dict[str, Any]:
    """Delegated and non-delegated ops with counts, and the number of delegated subgraphs.

    Counts real ops only: ``getitem`` (tuple unpacking of delegate outputs) and the delegate calls themselves are
    bookkeeping. Same walk as ``executorch.devtools.backend_debug.get_delegation_info`` but keyed by op target,
    not node name, so names match the scan reports.
    """
    delegated: collections.Counter[str] = collections.Counter()
    outside: collections.Counter[str] = collections.Counter()
    subgraphs = 0
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module_"):
            subgraphs += 1
            lowered = getattr(graph_module, node.target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and inner.target is not operator.getitem:
                    delegated[_op_name(inner)] += 1
        elif node.op == "call_function" and node.target is not operator.getitem:
            name = _op_name(node)
            if _DELEGATE_CALL not in name:
                outside[name] += 1
    return {
        "delegated_subgraphs": subgraphs,
        "delegated_ops": sum(delegated.values()),
        "non_delegated_ops": sum(outside.values()),
        "delegated": dict(delegated.most_common()),
        "non_delegated": dict(outside.most_common()),
    }


def partition_report(tagged: torch.fx.GraphModule) -> dict[str, Any]:
    """``delegation_report``'s subgraph count and non-delegated ops, read from a partitioner's tags (not lowered)."""
    tags: set[str] = set()
    outside: collections.Counter[str] = collections.Counter()
    for node in tagged.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if "delegation_tag" in node.meta:
            tags.add(node.meta["delegation_tag"])
        else:
            outside[_op_name(node)] += 1
    return {"delegated_subgraphs": len(tags), "non_delegated_ops": sum(outside.values()),
            "non_delegated": dict(outside.most_common())}


def _explain(model: nn.Module, example: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Where each non-delegated op comes from and why XNNPACK refused it (``executorch_support`` scan).

    Not a gate: ops XNNPACK leaves out still run on ExecuTorch's portable/optimized kernels, so a build never
    fails for them. The scan repeats export and partitioning, hence opt-in.
    """
    try:
        from .executorch_support import scan_torch_for_executorch
    except ImportError as err:
        return {"unavailable": str(err)}
    return scan_torch_for_executorch(model, example).to_dict()


def build_executorch(model: nn.Module, input_size: int, out_path: str | Path, explain: bool = False) -> Artifact:
    """Export, lower to XNNPACK and write a ``.pte`` atomically; the artifact's report has times and delegation.

    ``report["delegation"]`` describes the lowered program; ``report["xnnpack_passes"]`` names the rewrites and
    gives the subgraph count and non-delegated ops before them. ``explain=True`` adds
    ``report["outside_xnnpack"]``: module paths and reasons for every non-delegated op.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from .executorch_passes import RecordPartition, xnnpack_friendly_passes

    start = time.perf_counter()
    info = getattr(model, "info", None)
    if info is not None:
        info.check_input_size(input_size)
    model = model.eval()
    x = torch.zeros(1, 3, input_size, input_size)
    # One .pte serves every arch (XNNPACK picks kernels at load time), so arch/profile say "host"/"any".
    report: dict[str, Any] = {"input_size": input_size, "backend": "XnnpackBackend", "portable_across_arches": True}
    if explain:
        report["outside_xnnpack"] = _explain(model, (x,))

    with quiet("torch.export", "torch._export", "executorch", "torchao"):
        tick = time.perf_counter()
        try:
            program = torch.export.export(model, (x,), strict=False)
        except Exception as err:
            raise DeployError(f"torch.export failed: {_first_line(err)}") from err
        report["export_seconds"] = time.perf_counter() - tick

        tick = time.perf_counter()
        before, passes = RecordPartition(), xnnpack_friendly_passes()
        try:
            edge = to_edge_transform_and_lower(program, transform_passes=[before, *passes],
                                               partitioner=[XnnpackPartitioner()])
        except Exception as err:
            raise DeployError(f"lowering to XNNPACK failed: {_first_line(err)}") from err
        report["lower_seconds"] = time.perf_counter() - tick
        report["delegation"] = delegation_report(edge.exported_program().graph_module)
        unrewritten = partition_report(before.tagged)
        report["xnnpack_passes"] = {
            "passes": [type(p).__name__ for p in passes],
            "subgraphs_before": unrewritten["delegated_subgraphs"],
            "subgraphs_after": report["delegation"]["delegated_subgraphs"],
            "non_delegated_before": unrewritten["non_delegated"],
        }

        tick = time.perf_counter()
        et_program = edge.to_executorch()
        report["serialize_seconds"] = time.perf_counter() - tick

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(et_program.buffer)
    return Artifact(target="executorch", arch="host", profile="any", path=str(out_path),
                    build_seconds=time.perf_counter() - start, size_bytes=out_path.stat().st_size, report=report)


def load_executorch_host(pte_path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load a ``.pte`` once with ExecuTorch's Python runtime and return ``f(x) -> first output`` (for timing)."""
    from executorch.runtime import Runtime

    runtime = Runtime.get()
    if not runtime.backend_registry.is_available("XnnpackBackend"):
        raise DeployError("this ExecuTorch install has no XnnpackBackend", hint="reinstall executorch from pip")
    method = runtime.load_program(Path(pte_path)).load_method("forward")
    if method is None:
        raise DeployError(f"{pte_path} has no 'forward' method")

    def run(x: np.ndarray) -> np.ndarray:
        out = method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])
        return out[0].detach().numpy().copy()

    return run


def run_executorch_host(pte_path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run a ``.pte`` on this machine (pybindings runtime with XNNPACK) and return its first output."""
    return load_executorch_host(pte_path)(x)
