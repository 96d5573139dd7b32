"""Op-support scans agree with what each toolchain really does, and name the module each op came from."""

from __future__ import annotations

import collections
import json
import operator

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.models import create_model
from mobilevit_deploy.targets.executorch_support import scan_torch_for_executorch
from mobilevit_deploy.targets.onnxruntime_support import scan_onnx_for_onnxruntime
from mobilevit_deploy.targets.support import SupportReport, UnsupportedOp, onnx_module_path
from mobilevit_deploy.targets.tvm_support import NO_CONVERTER, scan_onnx_for_tvm

SIZE = 64  # the smallest size both families take; the graphs (and so the scans) do not depend on it
TINY_ATTENTION_MATMULS = tuple(f"backbone.trans.transformer_blocks.{i}.attn.matmul_{m}"
                               for i in range(4) for m in ("qk", "av"))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    path = tmp_path_factory.mktemp("onnx") / "topformer_tiny.onnx"
    export_onnx(create_model("topformer_tiny"), path, SIZE)
    return onnx.load(path)


def _inputs() -> tuple[torch.Tensor]:
    return (torch.zeros(1, 3, SIZE, SIZE),)


def _hand_built(nodes: list[onnx.NodeProto], opset: int = 18) -> onnx.ModelProto:
    """A float chain x → … → y; IR version 10 because ONNX Runtime 1.31 refuses newer ones."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    imports = [helper.make_opsetid("", opset), helper.make_opsetid("com.example", 1)]
    return helper.make_model(graph, opset_imports=imports, ir_version=10)


def _scoped(node: onnx.NodeProto, module: str) -> onnx.NodeProto:
    """Give a hand-built node the name scopes torch's dynamo exporter writes."""
    scopes = ["", *(".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)), "fx_node"]
    helper.set_metadata_props(node, {"pkg.torch.onnx.name_scopes": repr(scopes)})
    return node


def _with_matmuls_replaced(model: onnx.ModelProto) -> onnx.ModelProto:
    """The exported model with every MatMul turned into an op no target knows, keeping the exporter's metadata."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    for node in model.graph.node:
        if node.op_type == "MatMul":
            node.op_type, node.domain = "Mystery", "com.example"
    return model


# --- report type ---------------------------------------------------------------------------------------------------

def test_report_table_and_dict() -> None:
    ok = SupportReport("tvm", 10, 3, ())
    assert ok.ok and ok.format_table() == "tvm: all 3 op types supported (10 ops)"
    paths = ("a.b", "a.c", "", "d")
    bad = SupportReport("onnxruntime", 10, 3, (UnsupportedOp("com.example:Mystery", 4, paths, "why"),))
    table = bad.format_table()
    assert not bad.ok
    assert "1 of 3 op types not supported (4 of 10 ops)" in table
    assert "a.b, a.c, (root) (+1 more)" in table
    assert json.loads(json.dumps(bad.to_dict()))["unsupported"][0]["module_paths"] == list(paths)


# --- ONNX module paths ---------------------------------------------------------------------------------------------

def test_onnx_module_paths_name_real_submodules(tiny_onnx: onnx.ModelProto) -> None:
    model = create_model("topformer_tiny")
    paths = [onnx_module_path(node) for node in tiny_onnx.graph.node]
    for path in set(paths):
        model.get_submodule(path)  # raises if the exporter metadata was misread
    matmuls = tuple(onnx_module_path(n) for n in tiny_onnx.graph.node if n.op_type == "MatMul")
    assert matmuls == TINY_ATTENTION_MATMULS


@pytest.mark.parametrize(("props", "path"), [
    ({"namespace": ": pkg.Seg/backbone: pkg.Backbone/backbone.stem: pkg.Stem/conv2d: aten.conv2d.default"},
     "backbone.stem"),
    ({"namespace": ": pkg.Seg/add: aten.add.Tensor"}, ""),
    ({}, ""),
])
def test_onnx_module_path_without_name_scopes(props: dict[str, str], path: str) -> None:
    node = helper.make_node("Add", ["x", "x"], ["y"])
    helper.set_metadata_props(node, props)
    assert onnx_module_path(node) == path


# --- TVM -----------------------------------------------------------------------------------------------------------

def test_tvm_imports_exported_zoo_model(tiny_onnx: onnx.ModelProto) -> None:
    from tvm.relax.frontend.onnx import from_onnx

    report = scan_onnx_for_tvm(tiny_onnx)
    assert report.ok, report.format_table()
    assert report.total_ops == len(tiny_onnx.graph.node)
    assert report.op_types == len({n.op_type for n in tiny_onnx.graph.node})
    from_onnx(tiny_onnx)  # and TVM really imports it


def test_tvm_reports_all_missing_converters_at_once() -> None:
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    # Celu (ONNX opset 12) has no converter in TVM 0.27; Relu has one.
    model = _hand_built([
        _scoped(helper.make_node("Celu", ["x"], ["a"]), "backbone.stem.act"),
        helper.make_node("Relu", ["a"], ["b"]),
        _scoped(helper.make_node("Mystery", ["b"], ["c"], domain="com.example"), "decode_head"),
        _scoped(helper.make_node("Celu", ["c"], ["y"]), "decode_head.act"),
    ])
    report = scan_onnx_for_tvm(model)
    assert (report.total_ops, report.op_types) == (4, 3)
    assert report.unsupported == (
        UnsupportedOp("Celu", 2, ("backbone.stem.act", "decode_head.act"), NO_CONVERTER),
        UnsupportedOp("com.example:Mystery", 1, ("decode_head",), NO_CONVERTER),
    )
    # TVM's own check names the same op types (by type only, it ignores domains).
    with pytest.raises(tvm.error.OpNotImplemented) as err:
        from_onnx(model)
    assert set(str(err.value).split(": ", 1)[1].split(", ")) == {"Celu", "Mystery"}


def test_tvm_flags_standard_op_names_in_foreign_domains() -> None:
    model = _hand_built([helper.make_node("Relu", ["x"], ["y"], domain="com.example")])
    (op,) = scan_onnx_for_tvm(model).unsupported
    assert op.op == "com.example:Relu" and "ignores the domain" in op.reason


def test_tvm_paths_come_from_exporter_metadata(tiny_onnx: onnx.ModelProto) -> None:
    (op,) = scan_onnx_for_tvm(_with_matmuls_replaced(tiny_onnx)).unsupported
    assert (op.op, op.count, op.module_paths) == ("com.example:Mystery", 8, TINY_ATTENTION_MATMULS)


# --- ONNX Runtime --------------------------------------------------------------------------------------------------

def _ort_session_fails(model: onnx.ModelProto) -> bool:
    import onnxruntime as ort

    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # ONNX Runtime raises its own Fail/NotImplemented/InvalidGraph types
        return True
    return False


def test_onnxruntime_runs_exported_zoo_model(tiny_onnx: onnx.ModelProto) -> None:
    report = scan_onnx_for_onnxruntime(tiny_onnx)
    assert report.ok, report.format_table()
    assert report.total_ops == len(tiny_onnx.graph.node)


def test_onnxruntime_reports_unknown_domain_with_paths(tiny_onnx: onnx.ModelProto) -> None:
    model = _with_matmuls_replaced(tiny_onnx)
    (op,) = scan_onnx_for_onnxruntime(model).unsupported
    assert (op.op, op.count, op.module_paths) == ("com.example:Mystery", 8, TINY_ATTENTION_MATMULS)
    assert "no kernels for domain 'com.example'" in op.reason


@pytest.mark.parametrize(("node", "opset", "reason"), [
    (helper.make_node("Add", ["x", "x"], ["y"]), 6, "no CPU kernel for opset 6"),  # ORT's Add kernels start at 7
    (helper.make_node("Upsample", ["x", "x"], ["y"]), 18, "deprecated since opset 10"),
    (helper.make_node("Celu", ["x"], ["y"]), 18, None),  # TVM lacks it, ONNX Runtime has it
    (helper.make_node("HardSwish", ["x"], ["y"]), 18, None),  # no kernel, but ONNX Runtime expands its function body
])
def test_onnxruntime_matches_session_creation(node: onnx.NodeProto, opset: int, reason: str | None) -> None:
    model = _hand_built([node], opset)
    report = scan_onnx_for_onnxruntime(model)
    assert [u.reason for u in report.unsupported] == ([reason] if reason else [])
    assert _ort_session_fails(model) == (reason is not None)


def test_onnxruntime_inlines_local_functions() -> None:
    """Nodes inside a model-local function are checked (ONNX Runtime inlines it) and blamed on the caller's module."""
    def calling(body: list[onnx.NodeProto]) -> onnx.ModelProto:
        model = _hand_built([_scoped(helper.make_node("Block", ["x"], ["y"], domain="local"), "decode_head")])
        model.opset_import.append(helper.make_opsetid("local", 1))
        imports = [helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
        model.functions.append(helper.make_function("local", "Block", ["x"], ["y"], body, imports))
        return model

    good = calling([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])])
    mystery = helper.make_node("Mystery", ["a"], ["y"], domain="com.example")
    bad = calling([helper.make_node("Relu", ["x"], ["a"]), mystery])
    report = scan_onnx_for_onnxruntime(good)
    assert report.ok and report.total_ops == 2 and not _ort_session_fails(good)
    (op,) = scan_onnx_for_onnxruntime(bad).unsupported
    assert (op.op, op.module_paths) == ("com.example:Mystery", ("decode_head",)) and _ort_session_fails(bad)


def test_onnxruntime_checks_kernel_types() -> None:
    """Abs has float16 kernels only through inserted casts, and no bfloat16 kernel at all."""
    def abs_model(elem: int) -> onnx.ModelProto:
        graph = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", elem, [2])],
                                  [helper.make_tensor_value_info("y", elem, [2])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)

    half, brain = abs_model(TensorProto.FLOAT16), abs_model(TensorProto.BFLOAT16)
    assert scan_onnx_for_onnxruntime(half).ok and not _ort_session_fails(half)
    (op,) = scan_onnx_for_onnxruntime(brain).unsupported
    assert op.reason == "no CPU kernel for T=tensor(bfloat16)" and _ort_session_fails(brain)


# --- ExecuTorch ----------------------------------------------------------------------------------------------------

def _outside_delegate_after_lowering(model: torch.nn.Module) -> dict[str, int]:
    """Lower for real and count the op nodes left outside XNNPACK delegates, two ways that must agree."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(model, _inputs())
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    graph_module = lowered.exported_program().graph_module
    calls = [n for n in graph_module.graph.nodes if n.op == "call_function" and n.target is not operator.getitem]
    by_target = collections.Counter(
        n.target.__name__ for n in calls if n.target.__name__ != "executorch_call_delegate")
    info = get_delegation_info(graph_module)
    by_name = {b.op_type: b.non_delegated for b in info.delegation_by_operator.values()
               if b.non_delegated and b.op_type != "getitem"}
    assert by_name == {op.replace(".", "_"): count for op, count in by_target.items()}
    return dict(by_target)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["topformer_tiny", "casvit_xs"])
def test_executorch_scan_matches_real_xnnpack_lowering(name: str) -> None:
    model = create_model(name)
    # the plain partition; with executorch_passes nothing is left outside (test_executorch_delegation.py)
    report = scan_torch_for_executorch(model, _inputs(), rewrite=False)
    assert report.unsupported, "both models keep some ops outside XNNPACK; an empty scan would prove nothing"
    assert {u.op: u.count for u in report.unsupported} == _outside_delegate_after_lowering(model)
    for op in report.unsupported:
        for path in op.module_paths:
            model.get_submodule(path)
    if name == "topformer_tiny":  # matmul → bmm decomposition leaves two expand_copy per attention matmul
        expand = next(u for u in report.unsupported if u.op == "aten.expand_copy.default")
        assert (expand.count, expand.module_paths) == (16, TINY_ATTENTION_MATMULS)
