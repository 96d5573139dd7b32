"""The integer-only ONNX export of I-Segmenter-Tiny: ONNX Runtime, TVM on the host and TVM on aarch64 under
qemu-aarch64 (the C++ runner) give the PyTorch integer model's logits bit for bit, int8 and float alike.

isegmenter_tiny with its seeded random initialisation (no trained checkpoint yet) at 64×64. ONNX Runtime runs
``MatMulInteger`` exactly on this host (AVX-512 VNNI); on an x86 CPU without VNNI its u8·s8 kernel can saturate
int16 pair sums (onnxruntime's quantization docs), so ORT results there may differ. TVM builds use LLVM
opt-level 0 to fit the test budget (``support/tvm_quick_build``; the benchmark checks the default level).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.export import report_path
from mobilevit_deploy.export.integer_only import (
    INTEGER_OUTPUT_NAME,
    OUTPUT_NAME,
    IntegerExportReport,
    build_integer_onnx,
    export_integer_onnx,
    onnxruntime_runner,
)
from mobilevit_deploy.export.passes.integer_only import check_integer_only
from mobilevit_deploy.models import create_model
from mobilevit_deploy.quant.int_segmenter import IntSegmenter, convert_segmenter
from mobilevit_deploy.targets.runner_build import build_runner, run_runner
from support.tvm_quick_build import build_tvm_quick

SIZE = 64


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def float_model() -> torch.nn.Module:
    return create_model("isegmenter_tiny")


@pytest.fixture(scope="module")
def int_model(float_model: torch.nn.Module, images: torch.Tensor) -> IntSegmenter:
    return convert_segmenter(float_model, images[0])


@pytest.fixture(scope="module")
def exported(int_model: IntSegmenter, tmp_path_factory: pytest.TempPathFactory) -> IntegerExportReport:
    return export_integer_onnx(int_model, tmp_path_factory.mktemp("integer_only") / "isegmenter_tiny.onnx")


@pytest.fixture(scope="module")
def with_integer_output(int_model: IntSegmenter, exported: IntegerExportReport) -> Path:
    """The same graph with the int8 logits (the final DequantizeLinear's input) as a second output."""
    path = Path(exported.path).with_name("with_int8_logits.onnx")
    onnx.save(build_integer_onnx(int_model, integer_output=True), path)
    return path


def _reference(int_model: IntSegmenter, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(int8 logits, float logits) of the PyTorch integer model."""
    with torch.no_grad():
        return int_model.forward_int(int_model.quantize_input(x)).numpy(), int_model(x).numpy()


def _assert_identical(got_int: np.ndarray, got_float: np.ndarray, want: tuple[np.ndarray, np.ndarray]) -> None:
    want_int, want_float = want
    assert got_int.dtype == np.int8 and got_float.dtype == np.float32
    assert int((got_int != want_int).sum()) == 0, f"{int((got_int != want_int).sum())} int8 logits differ"
    assert np.array_equal(got_float, want_float)  # bit-identical floats: same int8 times the same float32 scale
    assert len(np.unique(want_int)) > 20  # a real output, not a saturated constant


def test_export_writes_a_checked_bit_exact_integer_only_file(exported: IntegerExportReport,
                                                             float_model: torch.nn.Module) -> None:
    path = Path(exported.path)
    assert exported.verified_images == 2 and exported.mismatched_logits == 0
    assert json.loads(report_path(path).read_text())["mismatched_logits"] == 0
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]  # the int8 logits were only for verification
    assert check_integer_only(model).element_types["float"] == 4
    float_bytes = 4 * sum(p.numel() for p in float_model.parameters())
    # measured: initializers 4.0x and the file 3.3x smaller than the float weights alone; the rest of the file is
    # ~5700 integer nodes and their static shapes
    assert exported.weight_bytes < 0.26 * float_bytes
    assert exported.size_bytes == path.stat().st_size < 0.32 * float_bytes


def test_onnxruntime_is_bit_identical_to_pytorch(with_integer_output: Path, int_model: IntSegmenter,
                                                 images: torch.Tensor) -> None:
    run = onnxruntime_runner(with_integer_output)
    for i in (1, 2):
        got = run(images[i : i + 1].numpy())
        _assert_identical(got[INTEGER_OUTPUT_NAME], got[OUTPUT_NAME], _reference(int_model, images[i : i + 1]))


def test_a_batch_of_two_is_bit_identical_too(int_model: IntSegmenter, images: torch.Tensor) -> None:
    got = onnxruntime_runner(build_integer_onnx(int_model, batch=2, integer_output=True))(images[2:4].numpy())
    _assert_identical(got[INTEGER_OUTPUT_NAME], got[OUTPUT_NAME], _reference(int_model, images[2:4]))


@pytest.mark.slow
def test_tvm_on_the_host_is_bit_identical_to_pytorch(with_integer_output: Path, int_model: IntSegmenter,
                                                     images: torch.Tensor) -> None:
    import tvm
    from tvm import relax

    lib = build_tvm_quick(with_integer_output, with_integer_output.with_suffix(".so"), "host")
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())
    logits, logits_int = vm["main"](tvm.runtime.tensor(images[1:2].numpy()))
    _assert_identical(logits_int.numpy(), logits.numpy(), _reference(int_model, images[1:2]))


@pytest.mark.slow
def test_tvm_on_aarch64_under_qemu_is_bit_identical_to_pytorch(exported: IntegerExportReport,
                                                               int_model: IntSegmenter, images: torch.Tensor,
                                                               tmp_path: Path) -> None:
    """The exported file, built for Cortex-A76, run by the C++ TVM runner under qemu-aarch64. The runner writes the
    float logits; the int8 logits are recovered exactly from them (q ↦ float32(q) · s is injective)."""
    path = Path(exported.path)
    lib = build_tvm_quick(path, path.with_name("a76.so"), "cortex-a76")
    assert lib.read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64
    x = images[1:2].numpy()
    np.save(tmp_path / "x.npy", x)
    result = run_runner(build_runner("tvm", "aarch64"), lib, tmp_path / "x.npy", tmp_path / "y.npy",
                        warmup=0, iters=1)
    logits = np.load(tmp_path / "y.npy")
    recovered = np.round(logits / np.float32(int_model.output_scale)).astype(np.int8)
    assert result.output_shape == (1, 150, SIZE, SIZE)
    _assert_identical(recovered, logits, _reference(int_model, images[1:2]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"opset": 17}, "unsupported opset 17 for the integer-only export"),
    ({"batch": 0}, "batch must be a positive int, got 0"),
])
def test_bad_requests_fail_before_any_work(int_model: IntSegmenter, tmp_path: Path, kwargs: dict,
                                           message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_integer_onnx(int_model, tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_float_model_is_refused_with_the_conversion_to_run(float_model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="takes an IntSegmenter, got Segmenter") as err:
        export_integer_onnx(float_model, tmp_path / "m.onnx")  # type: ignore[arg-type]
    assert "convert_segmenter" in err.value.hint and list(tmp_path.iterdir()) == []


def test_a_graph_that_disagrees_with_pytorch_is_not_written(int_model: IntSegmenter, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification compares against the PyTorch model; an off-by-one there (standing in for an exporter bug)
    fails the export with the count, and neither the model nor its report is left behind."""
    real = int_model.forward_int
    monkeypatch.setattr(int_model, "forward_int", lambda x: real(x) ^ 1)
    with pytest.raises(ExportError, match=r"differ from the PyTorch integer model in 1228800 of 1228800 values"):
        export_integer_onnx(int_model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
