"""Turn an exporter failure into one line naming the op and the module it came from.

The dynamo exporter raises a chain of errors; the one that says "Error when translating node %n : ...
target=OP" names the FX node, and re-exporting the program (cheap) maps that node to its ``nn_module_stack``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

_NODE = re.compile(r"translating node %(\S+) .*?target=(\S+?)\]")


def _chain(err: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        out.append(err)
        err = err.__cause__ or err.__context__
    return out


def _module_of(model: nn.Module, x: torch.Tensor, node_name: str) -> str | None:
    try:
        program = torch.export.export(model, (x,), strict=False).run_decompositions()
    except Exception:  # the diagnosis must never hide the original error
        return None
    for node in program.graph.nodes:
        if node.name == node_name:
            stack = node.meta.get("nn_module_stack") or {}
            paths = [path for path, _cls in stack.values() if path]
            return paths[-1] if paths else "(top level)"
    return None


def describe_export_failure(err: BaseException, model: nn.Module, x: torch.Tensor) -> str:
    """One line: which op failed, in which module, and the root cause."""
    chain = _chain(err)
    root = chain[-1]
    cause = (str(root).strip().splitlines() or [type(root).__name__])[0][:200]
    for link in chain:
        match = _NODE.search(str(link))
        if match:
            node, op = match.groups()
            op = op.removeprefix("torch.ops.")
            module = _module_of(model, x, node)
            where = f" in module '{module}'" if module else ""
            return f"op {op}{where} cannot be exported to ONNX: {cause}"
    return f"{type(model).__name__} cannot be exported to ONNX: {cause}"
