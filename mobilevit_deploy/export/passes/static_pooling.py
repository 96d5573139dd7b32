"""Global spatial means as ``GlobalAveragePool``: the exporter writes CAS-ViT's ``AdaptiveAvgPool2d(1)`` as a
``ReduceMean`` over H and W, which mobile runtimes and NPU converters treat as a generic reduction; the pooling op
is what they optimize. Our models never export an adaptive pooling with other output sizes (TopFormer's pyramid
pooling uses fixed windows), and this pass refuses any pooling whose window is not static."""

from __future__ import annotations

import onnx

from mobilevit_deploy.errors import ExportError

from ._graph import GraphIndex, attribute

NAME = "static_pooling"
_POOLS = {"AveragePool", "MaxPool", "LpPool"}


def _spatial_axes(index: GraphIndex, node: onnx.NodeProto, rank: int) -> bool:
    axes = index.const(node.input[1]) if len(node.input) > 1 and node.input[1] else attribute(node, "axes")
    if axes is None:
        return False
    return sorted(int(a) % rank for a in list(axes)) == [2, 3]


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    index = GraphIndex(model.graph)
    for node in model.graph.node:
        if node.op_type in _POOLS and not attribute(node, "kernel_shape"):
            raise ExportError(f"pooling node {node.name} has no static window", hint="use an input size the model "
                              "supports (a multiple of its input_multiple)")
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4 or not attribute(node, "keepdims", 1):
            continue
        if _spatial_axes(index, node, 4):
            node.op_type = "GlobalAveragePool"
            del node.input[1:]
            del node.attribute[:]
    return model
