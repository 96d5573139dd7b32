"""The integer-only check (``export.passes.integer_only``): it passes the exported I-Segmenter and names every float
tensor, with its producer, in graphs that let one in."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.export.integer_only import build_integer_onnx
from mobilevit_deploy.export.passes import integer_only
from mobilevit_deploy.export.passes.integer_only import IntegerOnlyError, check_integer_only
from mobilevit_deploy.models import create_model
from mobilevit_deploy.quant.int_segmenter import convert_segmenter


@pytest.fixture(scope="module")
def exported() -> onnx.ModelProto:
    """The integer-only graph of a 32×32 isegmenter_tiny (random init): 4 tokens, the full 14 blocks."""
    model = convert_segmenter(create_model("isegmenter_tiny"), torch.randn(1, 3, 32, 32,
                                                                           generator=torch.Generator().manual_seed(0)))
    return build_integer_onnx(model)


def _tiny(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:
    """x (float) → QuantizeLinear → ``nodes`` (reading ``q``, writing ``r`` int8) → DequantizeLinear → y."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.int8(0), "zp"),
             *(inits or [])]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quantize"), *nodes,
         helper.make_node("DequantizeLinear", ["r", "s", "zp"], ["y"], name="dequantize")],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_the_exported_isegmenter_is_integer_only(exported: onnx.ModelProto) -> None:
    report = check_integer_only(exported)
    assert report.quantize_inputs == ("input",) and report.dequantize_outputs == ("logits",)
    assert report.element_types["float"] == 4  # the image, its scale, the logits' scale, the logits
    assert set(report.element_types) == {"bool", "float", "int8", "int16", "int32", "int64"}
    assert report.ops["QuantizeLinear"] == report.ops["DequantizeLinear"] == 1
    # per block qkv, q·kᵀ, proj, fc1, fc2; then patch embedding, proj_dec, proj_patch, proj_classes, masks
    assert report.ops["MatMulInteger"] == 14 * 5 + 5
    assert report.ops["MatMul"] == 14  # p · v with int16 probabilities, in int32
    assert integer_only.run(exported) is exported


def test_a_float_tensor_injected_into_the_isegmenter_is_named_with_its_producer(exported: onnx.ModelProto) -> None:
    """Cast one int64 tensor deep inside a Shiftmax to float and back: the check names the float one."""
    model = onnx.ModelProto.FromString(exported.SerializeToString())
    nodes = list(model.graph.node)
    index, victim = next((i, n) for i, n in enumerate(nodes)
                         if n.name.startswith("encoder_blocks.7.attn.shiftmax.") and n.op_type == "Sub")
    out = victim.output[0]
    victim.output[0] = "leak_int"
    nodes[index + 1:index + 1] = [
        helper.make_node("Cast", ["leak_int"], ["leak_float"], to=TensorProto.FLOAT, name="inject_to_float"),
        helper.make_node("Cast", ["leak_float"], [out], to=TensorProto.INT64, name="inject_back")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    with pytest.raises(IntegerOnlyError, match=r"^1 float tensor\(s\) between the input QuantizeLinear") as err:
        check_integer_only(model)
    assert "'leak_float' (float) from Cast node 'inject_to_float'" in str(err.value)
    assert isinstance(err.value, ExportError) and "integer ops" in err.value.hint


def test_a_float_constant_and_its_product_are_both_named() -> None:
    model = _tiny([helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT, name="widen"),
                   helper.make_node("Mul", ["qf", "gain"], ["prod"], name="scale_up"),
                   helper.make_node("Cast", ["prod"], ["r"], to=TensorProto.INT8, name="narrow")],
                  [numpy_helper.from_array(np.array(1.5, np.float32), "gain")])
    with pytest.raises(IntegerOnlyError, match=r"3 float tensor\(s\)") as err:
        check_integer_only(model)
    message = str(err.value)
    assert "'qf' (float) from Cast node 'widen'" in message
    assert "'prod' (float) from Mul node 'scale_up'" in message
    assert "'gain' (float initializer) read by Mul 'scale_up'" in message


def test_a_dequantize_quantize_pair_inside_the_graph_is_a_float_tensor() -> None:
    """QDQ in the middle (what a QDQ export would leave) is exactly what integer-only forbids."""
    model = _tiny([helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["mid"], name="dq_mid"),
                   helper.make_node("QuantizeLinear", ["mid", "s", "zp"], ["r"], name="q_mid")])
    with pytest.raises(IntegerOnlyError, match="'mid' \\(float\\) from DequantizeLinear node 'dq_mid'"):
        check_integer_only(model)


def test_a_clean_tiny_graph_passes_and_lists_more_than_ten_floats_briefly() -> None:
    clean = _tiny([helper.make_node("Add", ["q", "q"], ["r"])])
    assert check_integer_only(clean).element_types == {"float": 3, "int8": 3}  # x, s, y; zp, q, r
    leaky = [helper.make_node("Cast", ["q"], ["f0"], to=TensorProto.FLOAT)]
    leaky += [helper.make_node("Neg", [f"f{i}"], [f"f{i + 1}"]) for i in range(11)]
    leaky.append(helper.make_node("Cast", ["f11"], ["r"], to=TensorProto.INT8))
    with pytest.raises(IntegerOnlyError, match=r"12 float tensor\(s\).*; and 2 more"):
        check_integer_only(_tiny(leaky))


def test_a_float_graph_or_a_broken_graph_is_refused_with_what_to_do() -> None:
    float_graph = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]), ir_version=10,
        opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(IntegerOnlyError, match=r"not an integer-only graph.*0 quantized input") as err:
        check_integer_only(float_graph)
    assert "integer_only" in err.value.hint
    broken = _tiny([helper.make_node("MatMul", ["q", "q"], ["r"], name="bad_matmul")])  # int8 MatMul: no such op
    with pytest.raises(IntegerOnlyError, match="type inference failed"):
        check_integer_only(broken)
