"""Compile targets end to end at a small input size: ExecuTorch .pte and TVM libraries checked against PyTorch/ORT.

Why 64×64: lowering cost barely depends on input size, numerics do not either, and the file stays near two minutes
(ExecuTorch's XNNPACK lowering is ~20-40 s per model on its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.export.verify import compare_outputs, run_onnxruntime, seeded_image_batch
from mobilevit_deploy.models import create_model
from mobilevit_deploy.targets.artifact import EM_AARCH64, elf_machine
from mobilevit_deploy.targets.cpu_profiles import PROFILE_NAMES, get_profile, verify_profile
from mobilevit_deploy.targets.executorch_target import build_executorch, run_executorch_host
from mobilevit_deploy.targets.tvm_target import CROSS_PACKAGE, build_tvm, run_tvm_host

SIZE = 64
MODELS = ("topformer_tiny", "casvit_xs_seg")
REL_TOL = 1e-4
MIN_ARGMAX = 0.999


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    agreement = compare_outputs(out, ref)
    assert agreement.rel_max_diff <= REL_TOL, agreement
    assert agreement.argmax_agreement >= MIN_ARGMAX, agreement


@pytest.fixture(scope="module", params=MODELS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A seeded model, its verified ONNX export, an input and the PyTorch reference output."""
    name = request.param
    torch.manual_seed(0)
    model = create_model(name).eval()
    out = tmp_path_factory.mktemp(name)
    onnx_path = out / f"{name}.onnx"
    export_onnx(model, onnx_path, SIZE, verify_each=False)  # still verified once against PyTorch
    x = seeded_image_batch(SIZE, seed=3)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return {"name": name, "model": model, "dir": out, "onnx": onnx_path, "x": x, "ref": ref}


# --- CPU profiles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_builds_a_tvm_target(name: str) -> None:
    target = verify_profile(name)
    profile = get_profile(name)
    if profile.is_host:
        assert "mtriple" not in profile.target_dict()
        return
    assert str(target.attrs["mtriple"]) == "aarch64-linux-gnu"
    assert str(verify_profile(name, android=True).attrs["mtriple"]) == "aarch64-linux-android"
    assert profile.qemu_cpu and profile.qemu_cpu != "max"  # bare `max` exposes SME (wrong XNNPACK int8 under qemu)


def test_dotprod_profiles_have_dotprod() -> None:
    assert not bool(verify_profile("aarch64").attrs["feature.has_dotprod"])
    for name in ("cortex-a55", "cortex-a76", "cortex-x3"):
        assert bool(verify_profile(name).attrs["feature.has_dotprod"])
    assert bool(verify_profile("cortex-x3").attrs["feature.has_matmul_i8"])


def test_unknown_profile_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DeployError) as err:
        get_profile("cortex-a999")
    for name in PROFILE_NAMES:
        assert name in str(err.value)
    with pytest.raises(DeployError, match="cortex-a76"):  # rejected before the (missing) ONNX file is read
        build_tvm(tmp_path / "missing.onnx", tmp_path / "m.so", "pixel")


# --- toolchain errors (fail before any work) -------------------------------------------------------------------


def test_missing_cross_compiler_names_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no aarch64-linux-gnu-g++
    with pytest.raises(DeployError) as err:
        build_tvm(tmp_path / "missing.onnx", tmp_path / "m.so", "cortex-a76")
    assert CROSS_PACKAGE == "g++-aarch64-linux-gnu"
    assert CROSS_PACKAGE in str(err.value)
    assert not (tmp_path / "m.so").exists()


def test_ndk_build_without_ndk_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    monkeypatch.delenv("TVM_NDK_CC", raising=False)
    with pytest.raises(DeployError, match="ANDROID_NDK_HOME"):
        build_tvm(tmp_path / "missing.onnx", tmp_path / "m.so", "cortex-a76", ndk=True)
    with pytest.raises(DeployError, match="aarch64 profile"):
        build_tvm(tmp_path / "missing.onnx", tmp_path / "m.so", "host", ndk=True)


# --- ExecuTorch ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_executorch_pte_matches_pytorch(case: dict[str, Any]) -> None:
    artifact = build_executorch(case["model"], SIZE, case["dir"] / "model.pte")
    assert artifact.target == "executorch" and artifact.size_bytes == os.path.getsize(artifact.path)
    _assert_close(run_executorch_host(artifact.path, case["x"]), case["ref"])

    deleg = artifact.report["delegation"]
    assert deleg["delegated_subgraphs"] >= 1
    assert deleg["delegated_ops"] > 0 and "aten.convolution.default" in deleg["delegated"]
    assert sum(deleg["non_delegated"].values()) == deleg["non_delegated_ops"]
    assert all(name.count(".") >= 1 and "schema" not in name for name in deleg["non_delegated"])
    assert "getitem" not in str(list(deleg["delegated"]) + list(deleg["non_delegated"]))
    for key in ("export_seconds", "lower_seconds", "serialize_seconds"):
        assert artifact.report[key] > 0


# --- TVM -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tvm_host_matches_onnxruntime_and_pytorch(case: dict[str, Any]) -> None:
    artifact = build_tvm(case["onnx"], case["dir"] / "model_host.so", "host")
    assert artifact.arch == "host" and artifact.report["elf_machine"] != EM_AARCH64
    out = run_tvm_host(artifact.path, case["x"])
    _assert_close(out, run_onnxruntime(case["onnx"], case["x"]))
    _assert_close(out, case["ref"])
    for key in ("import_seconds", "compile_seconds", "link_seconds"):
        assert artifact.report[key] > 0


@pytest.mark.slow
def test_tvm_aarch64_dotprod_build_is_an_aarch64_elf(tmp_path: Path) -> None:
    torch.manual_seed(0)
    onnx_path = tmp_path / "tt.onnx"
    export_onnx(create_model("topformer_tiny").eval(), onnx_path, SIZE, verify_each=False)
    artifact = build_tvm(onnx_path, tmp_path / "tt_a76.so", "cortex-a76")
    assert elf_machine(artifact.path) == EM_AARCH64 == artifact.report["elf_machine"]
    assert artifact.arch == "aarch64" and "+dotprod" in artifact.report["target"]
    with pytest.raises(DeployError, match="profile 'host'"):
        run_tvm_host(artifact.path, np.zeros((1, 3, SIZE, SIZE), np.float32))
