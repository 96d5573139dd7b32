"""The integer ONNX subgraphs of ``export.integer_only`` against the PyTorch I-ViT kernels (``quant.ivit``), bit for
bit, under ONNX Runtime and TVM on the host, with the two float boundaries (QuantizeLinear / DequantizeLinear
against ``IntSegmenter``'s own expressions, on a million values); and the table of integer ops both runtimes run
as integers.

Inputs reach the corners the model rarely visits: negative operands of every floor division, exact ties of every
rounding (both parities), shift-exp's clip and its saturating form (ShiftGELU rows that are all negative),
LayerNorm rows with zero variance.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from mobilevit_deploy.export.integer_only import arith, kernels
from mobilevit_deploy.export.integer_only.graph import IR_VERSION, GraphBuilder
from mobilevit_deploy.quant import ivit
from mobilevit_deploy.quant.int_segmenter import IntSegmenter
from mobilevit_deploy.quant.ivit._int import floor_div, round_half_even_div, round_shift
from mobilevit_deploy.quant.ivit.shiftgelu import GELU_N
from support.tvm_quick_build import build_tvm_quick

RNG = np.random.default_rng(7)
SHIFTS = RNG.integers(0, 41, 64)  # one shift per channel, 0 included


def _inputs() -> dict[str, np.ndarray]:
    a = RNG.integers(-(2**40), 2**40, (4, 64))
    ties = np.where(SHIFTS > 0, (2 * np.arange(64) + 1) << np.maximum(SHIFTS - 1, 0), 0)  # v = odd · 2^(k−1)
    a[2], a[3] = ties, -ties - (1 << SHIFTS) * (np.arange(64) % 2)  # positive and negative ties, both parities
    a[0, :8] = [0, -1, 1, -16, 16, -192 * 5 - 96, 192 * 5 + 96, -(2**62)]
    z = RNG.integers(-(2**31), 2**31 - 1, (4, 64)).astype(np.int32)
    logits = RNG.integers(-40000, 40000, (2, 3, 17, 17)).astype(np.int32)
    gelu = RNG.integers(-128, 128, (3, 5, 64)).astype(np.int8)
    gelu[0, 0] = RNG.integers(-128, -90, 64)  # all very negative: e^(−x_max) needs the saturating shift
    gelu[0, 1] = -128
    exp_in = -RNG.integers(0, 2000, (4, 64))
    resid = RNG.integers(-32768, 32768, (2, 17, 192)).astype(np.int16)
    resid[0, 0] = 1234  # zero variance
    resid[0, 1] = RNG.integers(-3, 4, 192)  # tiny variance: Newton ends above ⌊√var⌋
    image = (RNG.standard_normal((1000, 1000)) * 2.5).astype(np.float32)
    return {"image": image, "codes": RNG.integers(-128, 128, (1000, 1000)).astype(np.int8),
            "a": a.astype(np.int64), "z": z, "z_flipped": z[::-1].copy(), "logits": logits, "gelu": gelu,
            "exp_in": exp_in.astype(np.int64), "resid": resid}


INPUTS = _inputs()
DYADIC = ivit.dyadic_from_ratio(torch.from_numpy(RNG.uniform(1e-6, 3e-3, 64)))
DYADIC_B = ivit.dyadic_from_ratio(0.37)
CONST_B = torch.from_numpy(RNG.integers(-30000, 30000, 64)).to(torch.int32)
INPUT_SCALE, OUTPUT_SCALE = 0.0371234567891, 0.11817264917  # float64, as IntSegmenter keeps them


def _expected() -> dict[str, torch.Tensor]:
    t = {k: torch.from_numpy(v) for k, v in INPUTS.items()}
    k = torch.from_numpy(SHIFTS)
    boundaries = SimpleNamespace(input_scale=INPUT_SCALE, output_scale=OUTPUT_SCALE)
    return {
        "quantize": IntSegmenter.quantize_input(boundaries, t["image"]),  # type: ignore[arg-type]
        "dequantize": t["codes"].to(torch.float32) * OUTPUT_SCALE,  # IntSegmenter.forward's last step
        "floor_div_16": floor_div(t["a"], 16),
        "floor_div_neg7": floor_div(t["a"], -7),
        "round_div_192": round_half_even_div(t["a"], 192),
        "round_shift": round_shift(t["a"], k),
        "requantize": ivit.requantize(t["z"], DYADIC, 8),
        "requantize_add": ivit.requantize_add(t["z"], DYADIC, t["z_flipped"], DYADIC_B, 16),
        "requantize_add_const": ivit.requantize_add(t["z"], DYADIC, CONST_B, DYADIC_B, 16),
        "shift_exp": ivit.shift_exp(t["exp_in"], -40, 15),
        "shift_exp_saturate": ivit.shift_exp(t["a"] >> 30, -3, 20, saturate=True),
        "shiftmax_16": ivit.shiftmax(t["logits"], -512, 8, 16),
        "shiftmax_8": ivit.shiftmax(t["logits"] >> 8, -7, 15, 8),
        "shiftgelu": ivit.shiftgelu(t["gelu"], -61),
        "layernorm": ivit.int_layernorm(t["resid"]),
    }


def _graph() -> onnx.ModelProto:
    g = GraphBuilder()
    x = {name: g.input(name, v.dtype, v.shape) for name, v in INPUTS.items()}
    zero = g.const(np.int8(0))
    outs = {
        "quantize": g.op("QuantizeLinear", x["image"], g.const(np.float32(INPUT_SCALE)), zero, dtype=np.int8),
        "dequantize": g.op("DequantizeLinear", x["codes"], g.const(np.float32(OUTPUT_SCALE)), zero,
                           dtype=np.float32),
        "floor_div_16": arith.floor_div(g, x["a"], 16),
        "floor_div_neg7": arith.floor_div(g, x["a"], -7),
        "round_div_192": arith.round_half_even_div(g, x["a"], 192),
        "round_shift": arith.round_shift(g, x["a"], SHIFTS),
        "requantize": arith.requantize(g, x["z"], DYADIC, 8),
        "requantize_add": arith.requantize_add(g, x["z"], DYADIC, x["z_flipped"], DYADIC_B, 16),
        "requantize_add_const": arith.requantize_add(g, x["z"], DYADIC, CONST_B, DYADIC_B, 16),
        "shift_exp": kernels.shift_exp(g, x["exp_in"], -40, 15),
        "shift_exp_saturate": kernels.shift_exp(g, arith.floor_div(g, x["a"], 2**30), -3, 20, saturate=True),
        "shiftmax_16": kernels.shiftmax(g, x["logits"], -512, 8, 16),
        "shiftmax_8": kernels.shiftmax(g, arith.floor_div(g, arith.to_int64(g, x["logits"]), 256), -7, 15, 8),
        "shiftgelu": kernels.shiftgelu(g, x["gelu"], -61, GELU_N, 8),
        "layernorm": kernels.int_layernorm(g, x["resid"], 192),
    }
    renamed = {name: g.op("Identity", t, out_name=name) for name, t in outs.items()}
    expected = _expected()
    return g.model([(t, tuple(expected[name].shape)) for name, t in renamed.items()], 21, "kernels")


@pytest.fixture(scope="module")
def kernel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kernels") / "kernels.onnx"
    model = _graph()
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def _assert_bit_exact(got: dict[str, np.ndarray]) -> None:
    for name, want in _expected().items():
        assert got[name].dtype == want.numpy().dtype, (name, got[name].dtype, want.dtype)
        mismatch = int((got[name] != want.numpy()).sum())
        assert mismatch == 0, f"{name}: {mismatch} of {want.numel()} values differ"


def test_expected_values_exercise_the_corners() -> None:
    """The inputs reach what they are meant to: ties of both parities, the saturating exp, zero variance."""
    want = _expected()
    ties, k = INPUTS["a"][2:, SHIFTS > 0], SHIFTS[SHIFTS > 0]
    assert np.all(np.mod(ties, 1 << k) == 1 << (k - 1))  # exactly half-way
    assert set(np.mod(ties >> k, 2).ravel().tolist()) == {0, 1}  # from even and odd quotients
    assert int(want["shift_exp_saturate"].max()) == 2**31 - 1
    assert int(want["layernorm"][0, 0].abs().max()) == 0
    all_negative_max = torch.from_numpy(INPUTS["gelu"][0, :2].astype(np.int64)).amax(-1)
    assert ivit.shift_exp(-all_negative_max, -61, GELU_N, saturate=True).tolist() == [2**31 - 1] * 2


def test_onnxruntime_matches_the_pytorch_kernels_bit_for_bit(kernel_model: Path) -> None:
    session = ort.InferenceSession(str(kernel_model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    _assert_bit_exact(dict(zip(names, session.run(None, INPUTS), strict=True)))


@pytest.mark.slow
def test_tvm_matches_the_pytorch_kernels_bit_for_bit(kernel_model: Path) -> None:
    import tvm
    from tvm import relax

    lib = build_tvm_quick(kernel_model, kernel_model.with_suffix(".so"))
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())
    outs = vm["main"](*(tvm.runtime.tensor(v) for v in INPUTS.values()))
    names = [o.name for o in onnx.load(str(kernel_model)).graph.output]
    _assert_bit_exact({n: outs[i].numpy() for i, n in enumerate(names)})


# ------------------------------------------------------------------------------------------------ op support

A64 = np.array([-7, -6, -5, -1, 0, 1, 5, 6, 7, -(2**40) + 3, 2**40 + 3, -(2**62)], dtype=np.int64)
B64 = np.array([2, 2, -2, 4, 3, -3, 2, 4, -2, 16, 16, 7], dtype=np.int64)
TRUNC = np.array([abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
                  for a, b in zip(A64.tolist(), B64.tolist(), strict=True)])
I8 = np.array([[-128, 127, 3], [5, -7, 100]], np.int8)
W8 = np.array([[1, 2], [-3, 4], [127, -128]], np.int8)



class _Const(np.ndarray):
    """An operand stored as an initializer (TVM imports reduction axes only as constants)."""


def _const(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64).view(_Const)


# (op, attributes, inputs, expected): every row runs with integer semantics in ONNX Runtime 1.31 and TVM 0.27.
SUPPORTED = [
    ("Div", {}, (A64, B64), TRUNC),  # truncates toward zero in both (not floor)
    ("Mod", {}, (A64, B64), np.mod(A64, B64)),  # fmod=0: floor modulo in both
    ("Add", {}, (A64, B64), A64 + B64), ("Sub", {}, (A64, B64), A64 - B64), ("Mul", {}, (A64, B64), A64 * B64),
    ("Max", {}, (A64, B64), np.maximum(A64, B64)), ("Min", {}, (A64, B64), np.minimum(A64, B64)),
    ("Greater", {}, (A64, B64), A64 > B64), ("Less", {}, (A64, B64), A64 < B64),
    ("BitwiseAnd", {}, (A64, B64), A64 & B64), ("Neg", {}, (A64,), -A64),
    ("Where", {}, (A64 > 0, A64, B64), np.where(A64 > 0, A64, B64)),
    ("Clip", {}, (A64, np.int64(-128), np.int64(127)), np.clip(A64, -128, 127)),
    ("Gather", {"axis": 0}, (arith.POW2, np.array([0, 5, 62])), arith.POW2[[0, 5, 62]]),
    ("ReduceSum", {"keepdims": 1}, (A64[:9].reshape(3, 3), _const([-1])), A64[:9].reshape(3, 3).sum(-1, keepdims=True)),
    ("ReduceMax", {"keepdims": 1}, (A64.reshape(3, 4), _const([-1])), A64.reshape(3, 4).max(-1, keepdims=True)),
    ("MatMulInteger", {}, (I8, W8), I8.astype(np.int32) @ W8.astype(np.int32)),  # int8 weights stay int8 in TVM
    ("MatMul", {}, (I8.astype(np.int32), W8.astype(np.int32)), I8.astype(np.int32) @ W8.astype(np.int32)),
    ("BitShift", {"direction": "RIGHT"}, (np.array([2**40, 7], np.uint64), np.array([3, 1], np.uint64)),
     np.array([2**37, 3], np.uint64)),  # unsigned only in ONNX: no arithmetic shift of signed values
]


def _op_model(rows: list[tuple]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    nodes, inputs, outputs, inits, feeds = [], [], [], [], {}
    for i, (op, attrs, args, want) in enumerate(rows):
        names = []
        for j, arg in enumerate(args):
            names.append(f"in{i}_{j}")
            if isinstance(arg, _Const):
                inits.append(numpy_helper.from_array(np.asarray(arg).view(np.ndarray), names[-1]))
                continue
            arg = np.asarray(arg)
            feeds[names[-1]] = arg
            inputs.append(helper.make_tensor_value_info(names[-1], helper.np_dtype_to_tensor_dtype(arg.dtype),
                                                        arg.shape))
        nodes.append(helper.make_node(op, names, [f"out{i}"], **attrs))
        outputs.append(helper.make_tensor_value_info(f"out{i}", helper.np_dtype_to_tensor_dtype(np.asarray(want).dtype),
                                                     np.asarray(want).shape))
    graph = helper.make_graph(nodes, "ops", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=IR_VERSION), feeds


@pytest.mark.slow
def test_integer_op_table_holds_in_both_runtimes(tmp_path: Path) -> None:
    import tvm
    from tvm import relax

    model, feeds = _op_model(SUPPORTED)
    onnx.save(model, tmp_path / "ops.onnx")
    got_ort = ort.InferenceSession(str(tmp_path / "ops.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(build_tvm_quick(tmp_path / "ops.onnx",
                                                                          tmp_path / "ops.so"))), tvm.cpu())
    got_tvm = vm["main"](*(tvm.runtime.tensor(np.array(v, order="C")) for v in feeds.values()))
    for i, (op, _attrs, _args, want) in enumerate(SUPPORTED):
        want = np.asarray(want)
        for runtime, got in (("onnxruntime", got_ort[i]), ("tvm", got_tvm[i].numpy())):
            assert got.dtype == want.dtype and np.array_equal(got, want), (op, runtime, got, want)


def test_what_is_not_available_as_integer_ops() -> None:
    """ONNX has no int8 MatMul; TVM's importer refuses integer Pow (so 2^k is a table lookup); ONNX Runtime's int64
    Min/Max/Clip compare the low 32-bit words as signed (so the exporter uses Where + Less/Greater)."""
    from tvm.relax.frontend.onnx import from_onnx

    model, _ = _op_model([("MatMul", {}, (I8, W8), I8.astype(np.int32) @ W8.astype(np.int32))])
    with pytest.raises(onnx.shape_inference.InferenceError, match="MatMul"):
        onnx.checker.check_model(model, full_check=True)
    big, small = np.array([2659188735, 2**40 + 3]), np.array([16, 16])  # 2659188735 = 0x9E800FFF
    model, feeds = _op_model([("Min", {}, (big, small), np.minimum(big, small)),
                              ("Max", {}, (big, small), np.maximum(big, small))])
    got_min, got_max = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds)
    assert got_min.tolist() == [2659188735, 16] and got_max.tolist() == [16, 2**40 + 3]  # wrong, then right
    row = np.array([[2**62, 13, -(2**40), 2**40]])  # ONNX Runtime's int64 ReduceSum is exact only below 2^53
    model, feeds = _op_model([("ReduceSum", {"keepdims": 1}, (row, _const([-1])), row.sum(-1, keepdims=True))])
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got.tolist() == [[2**62]]  # 13 lost: the exporter's row sums stay below 2^41
    model, _ = _op_model([("Pow", {}, (np.array([2, 3]), np.array([40, 5])), np.array([2**40, 243]))])
    with pytest.raises(Exception, match="power only applies to float"):
        import tvm

        tvm.compile(from_onnx(model, keep_params_in_input=False), target="llvm")
