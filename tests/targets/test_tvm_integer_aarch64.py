"""Integer TVM code for aarch64: dot-product instructions where the CPU profile has them, and the same bits as the
host build when the library runs under qemu-aarch64 in the C++ runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from mobilevit_deploy.targets.runner_build import build_runner, run_runner
from mobilevit_deploy.targets.tvm_integer.inspection import count_instructions, integer_instruction_summary
from mobilevit_deploy.targets.tvm_target import build_tvm, run_tvm_host
from support.qdq_models import CASES

CASE = "conv3x3_u8"  # uint8 activations → int8 × int8 conv with int32 accumulation


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8") / f"{CASE}.onnx"
    onnx.save(CASES[CASE].build(), path)
    return path


@pytest.fixture(scope="module")
def a76_library(onnx_path: Path) -> Path:
    return Path(build_tvm(onnx_path, onnx_path.with_name("a76.so"), "cortex-a76", integer=True).path)


@pytest.mark.slow
def test_dotprod_profile_gets_sdot_and_others_do_not(onnx_path: Path, a76_library: Path) -> None:
    """cortex-a76 (+dotprod): sdot in the integer conv; generic Armv8-A: none; the float QDQ build: no integer math."""
    a76 = integer_instruction_summary(count_instructions(a76_library))
    generic = build_tvm(onnx_path, onnx_path.with_name("generic.so"), "aarch64", integer=True).path
    generic_counts = integer_instruction_summary(count_instructions(generic))
    float_qdq = build_tvm(onnx_path, onnx_path.with_name("float.so"), "cortex-a76").path
    float_counts = integer_instruction_summary(count_instructions(float_qdq))
    assert a76["sdot"] >= 1, a76
    assert generic_counts["dot_product"] == 0, generic_counts
    assert float_counts["dot_product"] == 0 and float_counts["neon_integer_multiply"] == 0, float_counts


@pytest.mark.slow
def test_aarch64_library_under_qemu_matches_the_host_build_bit_for_bit(onnx_path: Path, a76_library: Path,
                                                                       tmp_path: Path) -> None:
    x = (np.random.default_rng(4).standard_normal(CASES[CASE].input_shape) * 1.2).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    host = run_tvm_host(build_tvm(onnx_path, tmp_path / "host.so", "host", integer=True).path, x)
    result = run_runner(build_runner("tvm", "aarch64"), a76_library, tmp_path / "x.npy", tmp_path / "y.npy",
                        warmup=0, iters=1)
    arm = np.load(tmp_path / "y.npy")
    assert result.output_shape == host.shape
    np.testing.assert_array_equal(arm, host)
    assert len(np.unique(host)) > 50  # a real output, not a saturated constant
