"""Small helpers over an ``onnx.ModelProto`` graph shared by our own passes (producers, consumers, initializers)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper


class GraphIndex:
    """Who produces and who consumes each tensor, and the initializers as numpy arrays (read-only snapshot)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer: dict[str, onnx.NodeProto] = {o: n for n in graph.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer, or None when the tensor is computed."""
        tensor = self.initializers.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        """The single node reading ``name``, if exactly one does and it is not also a graph output."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.graph_outputs else None


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def add_initializer(graph: onnx.GraphProto, base: str, value: np.ndarray) -> str:
    """Add an initializer under a fresh name derived from ``base`` and return that name."""
    taken = {t.name for t in graph.initializer}
    name, i = f"{base}_folded", 0
    while name in taken:
        i += 1
        name = f"{base}_folded{i}"
    graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def remove_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
