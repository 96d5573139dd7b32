"""Remove Identity and Dropout nodes: in inference they copy their input, and every copy is a wasted kernel call
(and, for runtimes that do not fuse across them, a broken fusion)."""

from __future__ import annotations

import onnx

from ._graph import GraphIndex

NAME = "remove_identity"
_NOOPS = {"Identity", "Dropout"}


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    index = GraphIndex(graph)
    rename: dict[str, str] = {}
    drop = []
    for node in graph.node:
        if node.op_type not in _NOOPS or node.domain not in ("", "ai.onnx"):
            continue
        out = node.output[0]
        if out in index.graph_outputs or any(o and index.consumers.get(o) for o in node.output[1:]):
            continue  # keep the graph's output names and any used Dropout mask
        rename[out] = node.input[0]
        drop.append(node)
    if not drop:
        return model

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in drop:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = resolve(name)
    return model
