"""Our own ONNX passes on small hand-built graphs, checked numerically with ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mobilevit_deploy.export.passes import fold_batchnorm, remove_identity, static_pooling
from mobilevit_deploy.export.verify import run_onnxruntime

RNG = np.random.default_rng(0)


def _bn_params(prefix: str, channels: int) -> list[onnx.TensorProto]:
    values = [RNG.uniform(0.5, 1.5, channels), RNG.normal(0, 0.3, channels), RNG.normal(0, 0.3, channels),
              RNG.uniform(0.5, 2.0, channels)]
    return [numpy_helper.from_array(v.astype(np.float32), f"{prefix}_{n}")
            for v, n in zip(values, ("scale", "bias", "mean", "var"), strict=True)]


def _bn(prefix: str, x: str, y: str) -> onnx.NodeProto:
    return helper.make_node("BatchNormalization", [x, *(f"{prefix}_{n}" for n in ("scale", "bias", "mean", "var"))],
                            [y], epsilon=1e-5)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], channels: int = 4,
           out_channels: int = 4, outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 6, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _conv(x: str, y: str, cin: int, cout: int, k: int, pads: int = 0, group: int = 1,
          bias: bool = True) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    w = numpy_helper.from_array(RNG.normal(0, 0.5, (cout, cin // group, k, k)).astype(np.float32), f"{y}_w")
    inits = [w]
    inputs = [x, f"{y}_w"]
    if bias:
        inits.append(numpy_helper.from_array(RNG.normal(0, 0.1, cout).astype(np.float32), f"{y}_b"))
        inputs.append(f"{y}_b")
    return helper.make_node("Conv", inputs, [y], pads=[pads] * 4, group=group), inits


def _run(model: onnx.ModelProto) -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(1, 4, 6, 6)).astype(np.float32)
    return run_onnxruntime(model.SerializeToString(), x)


def _fold_and_compare(model: onnx.ModelProto) -> onnx.ModelProto:
    before = _run(model)
    folded = fold_batchnorm.run(onnx.ModelProto.FromString(model.SerializeToString()))
    np.testing.assert_allclose(_run(folded), before, rtol=1e-5, atol=1e-5)
    return folded


@pytest.mark.parametrize("group", [1, 2, 4])
def test_prenorm_folds_forward_into_an_unpadded_conv(group: int) -> None:
    conv, inits = _conv("n", "y", 4, 8, k=1, group=group, bias=False)
    model = _model([_bn("bn", "x", "n"), conv], _bn_params("bn", 4) + inits)
    folded = _fold_and_compare(model)
    assert [n.op_type for n in folded.graph.node] == ["Conv"]


def test_conv_then_batchnorm_folds_backward() -> None:
    conv, inits = _conv("x", "c", 4, 4, k=3, pads=1)
    model = _model([conv, _bn("bn", "c", "y")], inits + _bn_params("bn", 4))
    assert [n.op_type for n in _fold_and_compare(model).graph.node] == ["Conv"]


def test_prenorm_before_a_padded_conv_is_kept() -> None:
    """Zero padding happens after the BN shift; folding would change the border pixels."""
    conv, inits = _conv("n", "y", 4, 4, k=3, pads=1)
    model = _model([_bn("bn", "x", "n"), conv], _bn_params("bn", 4) + inits)
    assert [n.op_type for n in _fold_and_compare(model).graph.node] == ["BatchNormalization", "Conv"]


def test_batchnorm_with_two_readers_is_kept() -> None:
    conv, inits = _conv("n", "y", 4, 4, k=1)
    model = _model([_bn("bn", "x", "n"), conv, helper.make_node("Relu", ["n"], ["z"])],
                   _bn_params("bn", 4) + inits, outputs=("y", "z"))
    assert "BatchNormalization" in [n.op_type for n in _fold_and_compare(model).graph.node]


def test_identity_and_dropout_are_removed() -> None:
    conv, inits = _conv("d", "y", 4, 4, k=1)
    nodes = [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Dropout", ["i"], ["d"]), conv]
    model = _model(nodes, inits)
    before = _run(model)
    cleaned = remove_identity.run(model)
    assert [n.op_type for n in cleaned.graph.node] == ["Conv"] and cleaned.graph.node[0].input[0] == "x"
    np.testing.assert_array_equal(_run(cleaned), before)


def test_spatial_reduce_mean_becomes_global_average_pool() -> None:
    axes = numpy_helper.from_array(np.array([-2, -1], dtype=np.int64), "axes")
    model = _model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)], [axes])
    before = _run(model)
    pooled = static_pooling.run(model)
    assert [n.op_type for n in pooled.graph.node] == ["GlobalAveragePool"]
    np.testing.assert_allclose(_run(pooled), before, rtol=1e-6)


def test_channel_reduce_mean_is_left_alone() -> None:
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    model = _model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)], [axes])
    assert [n.op_type for n in static_pooling.run(model).graph.node] == ["ReduceMean"]


@pytest.mark.parametrize("trans_b", [0, 1])
def test_batchnorm_before_pooling_folds_into_every_linear_head(trans_b: int) -> None:
    """CAS-ViT's classifier: BN → flatten → spatial mean → two Gemm heads."""
    shape = numpy_helper.from_array(np.array([1, 4, -1], dtype=np.int64), "shape")
    axes = numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes")
    heads = []
    for name in ("head", "dist"):
        w = RNG.normal(0, 0.5, (3, 4) if trans_b else (4, 3)).astype(np.float32)
        heads.append(numpy_helper.from_array(w, f"{name}_w"))
    nodes = [_bn("bn", "x", "n"), helper.make_node("Reshape", ["n", "shape"], ["r"]),
             helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=0),
             helper.make_node("Gemm", ["m", "head_w"], ["h"], transB=trans_b),
             helper.make_node("Gemm", ["m", "dist_w"], ["d"], transB=trans_b),
             helper.make_node("Add", ["h", "d"], ["y"])]
    model = _model(nodes, [*_bn_params("bn", 4), shape, axes, *heads])
    folded = _fold_and_compare(model)
    assert "BatchNormalization" not in [n.op_type for n in folded.graph.node]


def test_batchnorm_before_pooling_is_kept_when_the_pooled_vector_has_another_reader() -> None:
    shape = numpy_helper.from_array(np.array([1, 4, -1], dtype=np.int64), "shape")
    axes = numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes")
    w = numpy_helper.from_array(RNG.normal(0, 0.5, (3, 4)).astype(np.float32), "w")
    nodes = [_bn("bn", "x", "n"), helper.make_node("Reshape", ["n", "shape"], ["r"]),
             helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=0),
             helper.make_node("Gemm", ["m", "w"], ["y"], transB=1), helper.make_node("Relu", ["m"], ["z"])]
    model = _model(nodes, [*_bn_params("bn", 4), shape, axes, w], outputs=("y", "z"))
    assert "BatchNormalization" in [n.op_type for n in _fold_and_compare(model).graph.node]
