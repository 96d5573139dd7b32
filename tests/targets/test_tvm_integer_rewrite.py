"""The QDQ → integer rewrite on small hand-built QDQ models: what it lowers, the IR it leaves, and its numerics
against ONNX Runtime running the same QDQ model.

Reference: ONNX Runtime with graph optimizations off, i.e. the literal QDQ float simulation the ONNX spec defines
(dequantize, float op, quantize with round-half-to-even). Fixed-point requantization may differ from it by one step
where the float product lands within rounding error of a half; the tests bound that at 1 LSB on at most 0.1%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.tvm_integer import QDQToInteger, lower_qdq_to_integer
from mobilevit_deploy.targets.tvm_integer.inspection import relax_op_types, tir_kernel_types
from mobilevit_deploy.targets.tvm_target import build_tvm, run_tvm_host
from support.qdq_models import CASES, run_ort
from support.qdq_models import output_scale as quantized_output_scale

MIN_EXACT = 0.999  # fraction of output elements identical to ONNX Runtime
MAX_LSB = 1.0
FLOAT_OUTPUT_RTOL = 1e-5  # int32 accumulator dequantized vs float accumulation of dequantized values
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", params=sorted(CASES))
def lowered(request: pytest.FixtureRequest) -> dict:
    """A case's model, its imported module, the rewritten module, the report and a compiled VM (once per case)."""
    case = CASES[request.param]
    model = case.build()
    mod = from_onnx(model, keep_params_in_input=False)
    new_mod, report = lower_qdq_to_integer(mod)
    vm = relax.VirtualMachine(tvm.compile(new_mod, "llvm"), tvm.cpu())
    return {"name": request.param, "case": case, "model": model, "mod": mod, "new": new_mod, "report": report,
            "run": lambda x: vm["main"](tvm.runtime.tensor(x)).numpy()}


def _inputs(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Seeded inputs a little wider than the calibration input, so some values saturate as in practice."""
    return [(np.random.default_rng(100 + s).standard_normal(shape) * 1.2).astype(np.float32) for s in SEEDS]


def test_each_site_is_lowered_as_planned(lowered: dict) -> None:
    report = lowered["report"]
    got = {op: tuple(s.lowering for s in report.sites if s.op == op) for op in {s.op for s in report.sites}}
    assert got == lowered["case"].lowerings
    for site in report.sites:
        assert (site.reason is None) == (site.lowering == "requantize"), site
        assert (site.arithmetic is None) == (site.lowering == "float"), site


def _optimized_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray | None:
    """ONNX Runtime with its int8 kernels (QLinearConv & co.), or None where its optimizer rejects the graph.

    ONNX Runtime 1.31's QDQ transpose propagation builds an invalid node for a symmetric int8 Transpose→MatMul
    ("output_dtype INT8 does not match y_zero_point type UINT8"): that case has the float-simulation reference only.
    """
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    try:
        return run_ort(model, x, optimized=True)
    except Fail as err:
        assert "does not match y_zero_point type" in str(err)
        return None


def test_integer_code_matches_onnx_runtime(lowered: dict) -> None:
    """Against the float simulation (ONNX semantics) and, where every op is integer, ONNX Runtime's int8 kernels."""
    model, step = lowered["model"], quantized_output_scale(lowered["model"])
    all_integer = lowered["report"].count(lowering="float") == 0
    for x in _inputs(lowered["case"].input_shape):
        got = lowered["run"](x)
        for ref in (run_ort(model, x), _optimized_reference(model, x) if all_integer else None):
            if ref is None:
                continue
            if step is None:  # a float output: the dequantized accumulator
                assert np.abs(got - ref).max() <= FLOAT_OUTPUT_RTOL * np.abs(ref).max()
                continue
            lsb = np.abs(got.astype(np.float64) - ref) / step
            assert lsb.max() <= MAX_LSB + 1e-3, lsb.max()
            assert (lsb < 1e-3).mean() >= MIN_EXACT, (lsb < 1e-3).mean()


def test_rewritten_module_computes_conv_and_matmul_on_integers(lowered: dict) -> None:
    """Relax ops and their legalized TIR kernels: int8/int16 inputs, int32 output; float ones only where reported."""
    report = lowered["report"]
    for view in (relax_op_types(lowered["new"]), tir_kernel_types(lowered["new"])):
        integer = [t for t in view if t.integer]
        assert len(integer) == report.integer_count, view
        assert len(view) - len(integer) == report.count(lowering="float"), view
        for t in integer:
            assert t.output == "int32" and set(t.inputs) <= {"int8", "int16"}, t
    before = relax_op_types(lowered["mod"])
    assert not any(t.integer for t in before) and len(before) == len(report.sites)


def test_report_names_what_stayed_float_and_why() -> None:
    mod = from_onnx(CASES["float_weights"].build(), keep_params_in_input=False)
    _, report = lower_qdq_to_integer(mod)
    assert report.summary() == {"conv2d": {"requantize": 0, "dequantize": 0, "float": 1}}
    assert "conv2d #0 float: weight: a float constant, not dequantized" in report.format_table()
    _, report = lower_qdq_to_integer(from_onnx(CASES["conv_residual_u8"].build(), keep_params_in_input=False))
    assert "conv2d #0 dequantize: its result feeds add, not a quantize" in report.format_table()
    assert report.to_dict()["sites"][0]["arithmetic"] == "uint8 -> int8 x int8 -> int32"


def test_pass_form_runs_in_a_sequential_and_keeps_its_report() -> None:
    mod = from_onnx(CASES["matmul_u8"].build(), keep_params_in_input=False)
    lowering = QDQToInteger()
    out = tvm.transform.Sequential([lowering, relax.transform.LegalizeOps()])(mod)
    assert lowering.report is not None and lowering.report.integer_count == 1
    assert [t for t in tir_kernel_types(out) if t.integer]


# --- build_tvm(integer=True) -----------------------------------------------------------------------------------


def test_build_tvm_integer_writes_an_integer_library(tmp_path: Path) -> None:
    model = CASES["conv_relu6_s8"].build()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    artifact = build_tvm(path, tmp_path / "m.so", "host", integer=True)
    assert artifact.report["integer"]["summary"] == {"conv2d": {"requantize": 1, "dequantize": 0, "float": 0}}
    assert artifact.report["relax_pipeline"] == "QDQToInteger + default"
    x = _inputs(CASES["conv_relu6_s8"].input_shape)[0]
    lsb = np.abs(run_tvm_host(artifact.path, x) - run_ort(model, x)) / quantized_output_scale(model)
    assert lsb.max() <= MAX_LSB + 1e-3


def test_build_tvm_integer_refuses_a_float_model_before_any_work(tmp_path: Path) -> None:
    g = onnx.helper
    graph = g.make_graph([g.make_node("Relu", ["x"], ["y"])], "f",
                         [g.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                         [g.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    model = g.make_model(graph, opset_imports=[g.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "float.onnx")
    with pytest.raises(DeployError, match=r"integer=True needs a QDQ model, but float\.onnx has no "
                                          r"QuantizeLinear/DequantizeLinear nodes") as err:
        build_tvm(tmp_path / "float.onnx", tmp_path / "f.so", "host", integer=True)
    assert "quantize it first" in err.value.hint and not (tmp_path / "f.so").exists()


def test_build_tvm_integer_refuses_when_nothing_can_be_integer(tmp_path: Path) -> None:
    onnx.save(CASES["float_weights"].build(), tmp_path / "fw.onnx")
    with pytest.raises(DeployError, match=r"none of the 1 conv2d/matmul ops of this QDQ model could be lowered to "
                                          r"integers \(weight: a float constant, not dequantized") as err:
        build_tvm(tmp_path / "fw.onnx", tmp_path / "fw.so", "host", integer=True)
    assert "without integer=True" in err.value.hint and not (tmp_path / "fw.so").exists()
