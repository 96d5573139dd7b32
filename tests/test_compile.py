"""``mvd compile`` → ``mvd verify`` end to end: real ExecuTorch and TVM builds, real aarch64 code under qemu."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mobilevit_deploy.bundle import load_bundle
from mobilevit_deploy.bundle.verify import verify_bundle
from mobilevit_deploy.cli.main import main
from mobilevit_deploy.compile import compile_bundle
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.models import create_model

CASES = [(model, target, arch) for model in ("topformer_tiny", "casvit_xs_seg")
         for target in ("executorch", "tvm") for arch in ("host", "aarch64")]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Path]:
    """Each (model, target, arch) bundle at 64×64, built once for the module."""
    root = tmp_path_factory.mktemp("bundles")
    return {case: compile_bundle(case[0], case[1], root / "-".join(case), arch=case[2], input_size=64).bundle
            for case in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_compiled_bundle_verifies_where_it_belongs(bundles: dict, case: tuple[str, str, str]) -> None:
    result = verify_bundle(bundles[case])
    assert result.agreement.rel_max_diff <= 1e-4
    assert result.agreement.argmax_agreement >= 0.999
    assert ("qemu-aarch64" in result.where) == (case[2] == "aarch64")
    assert result.runner.runtime == case[1] and result.runner.peak_rss_kb > 0


@pytest.mark.slow
def test_aarch64_bundle_holds_arm_code_and_complete_metadata(bundles: dict) -> None:
    bundle = load_bundle(bundles[("topformer_tiny", "tvm", "aarch64")])
    meta = bundle.metadata
    assert bundle.artifact.read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64
    assert bundle.runner_files[0].read_bytes()[18] == 183
    assert meta["input"]["shape"] == [1, 3, 64, 64] and meta["input"]["mean"] == [123.675, 116.28, 103.53]
    assert meta["output"]["shape"] == [1, 150, 8, 8] and meta["output"]["stride"] == 8
    assert len(meta["classes"]["names"]) == len(meta["classes"]["palette"]) == 150
    assert meta["classes"]["names"][:3] == ["wall", "building", "sky"]
    assert {"torch", "apache-tvm", "executorch", "onnxruntime", "mobilevit-deploy"} <= set(meta["versions"])
    assert all(len(f["sha256"]) == 64 for f in meta["files"].values())
    assert "libtvm_runtime.so" in {p.name for p in bundle.runner_files}


@pytest.mark.slow
def test_pte_runs_with_executorch_alone_using_only_the_metadata(bundles: dict) -> None:
    """An app needs nothing of ours: the metadata names the artifact and the reference pair."""
    from executorch.runtime import Runtime

    root = bundles[("topformer_tiny", "executorch", "aarch64")]
    meta = json.loads((root / "metadata.json").read_text())
    x = np.load(root / meta["reference"]["input"])
    assert list(x.shape) == meta["input"]["shape"]
    method = Runtime.get().load_program(root / meta["target"]["artifact"]).load_method("forward")
    out = method.execute([torch.from_numpy(x)])[0].numpy()
    expected = np.load(root / meta["reference"]["output"])
    assert list(out.shape) == meta["output"]["shape"]
    assert np.abs(out - expected).max() / np.abs(expected).max() <= 1e-4


@pytest.mark.slow
def test_an_edited_or_incomplete_bundle_is_refused(bundles: dict, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = bundles[("topformer_tiny", "executorch", "host")]
    edited, incomplete = tmp_path / "edited", tmp_path / "incomplete"
    shutil.copytree(source, edited)
    shutil.copytree(source, incomplete)
    with (edited / "model.pte").open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    (incomplete / "runner" / "libexecutorch.so").unlink()
    assert main(["verify", str(edited)]) == 2
    assert "was modified: model.pte does not match its checksum" in capsys.readouterr().err
    assert main(["verify", str(incomplete)]) == 2
    assert "is incomplete: runner/libexecutorch.so is missing" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "bundle folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_of_an_aarch64_bundle_scores_what_pytorch_scores(bundles: dict, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``mvd eval BUNDLE`` runs each image through the bundle's own runner (aarch64 under qemu here) and scores it;
    the bundle holds the seeded random weights of ``create_model``, so PyTorch with those weights must score alike."""
    ckpt = tmp_path / "seeded.pth"
    torch.save({"state_dict": create_model("topformer_tiny").state_dict()}, ckpt)
    scores = {}
    for name, argv in {"bundle": [str(bundles[("topformer_tiny", "tvm", "aarch64")])],
                       "torch": ["topformer_tiny", "--checkpoint", str(ckpt), "--input-size", "64"]}.items():
        out = tmp_path / f"{name}.json"
        assert main(["eval", *argv, "--data", "shapes", "--limit", "2", "-o", str(out)]) == 0
        scores[name] = json.loads(out.read_text())
    assert "2/2 images" in capsys.readouterr().out
    assert scores["bundle"]["arch"] == "aarch64" and scores["bundle"]["preprocess"]["input_size"] == [64, 64]
    assert scores["bundle"]["mIoU"] == pytest.approx(scores["torch"]["mIoU"], abs=1e-3)
    assert scores["bundle"]["aAcc"] == pytest.approx(scores["torch"]["aAcc"], abs=1e-3)


def test_cli_compile_and_verify_onnx_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "onnx-bundle"
    assert main(["compile", "topformer_tiny", "--target", "onnx", "--arch", "host", "--input-size", "64",
                 "-o", str(out)]) == 0
    assert "[compile] [2] scan ops" in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith("PASS")


@pytest.mark.parametrize(("kwargs", "message", "hint"), [
    ({"target": "tflite"}, "unknown target 'tflite'", "tvm, executorch, onnx"),
    ({"target": "tvm", "cpu": "cortex-a99"}, "unknown CPU profile 'cortex-a99'", "cortex-a76"),
    ({"target": "tvm", "arch": "riscv"}, "unknown arch 'riscv'", "host, aarch64"),
    ({"target": "tvm", "arch": "host", "cpu": "cortex-a55"}, "is for aarch64, not host", "--cpu host"),
])
def test_bad_requests_fail_before_any_work(tmp_path: Path, kwargs: dict, message: str, hint: str) -> None:
    with pytest.raises(DeployError, match=message) as err:
        compile_bundle("topformer_tiny", out_dir=tmp_path / "b", input_size=64, **kwargs)
    assert hint in err.value.hint and not (tmp_path / "b").exists()


def test_missing_cross_compiler_names_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mobilevit_deploy.compile as compile_module

    real_which = shutil.which
    monkeypatch.setattr(compile_module.shutil, "which",
                        lambda name: None if name == "aarch64-linux-gnu-g++" else real_which(name))
    with pytest.raises(DeployError, match="cross compiler aarch64-linux-gnu-g\\+\\+ is not installed") as err:
        compile_bundle("topformer_tiny", "tvm", tmp_path / "b", arch="aarch64", input_size=64)
    assert "apt-get install g++-aarch64-linux-gnu" in err.value.hint


def test_a_model_tvm_cannot_compile_lists_every_op_before_any_work(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan runs on the exported graph; here the graph gains two ops TVM's ONNX frontend has no converter for."""
    import mobilevit_deploy.export.onnx_export as onnx_export

    real = onnx_export.torch_to_onnx

    def with_unknown_ops(model: torch.nn.Module, size: int, opset: int = 18) -> onnx.ModelProto:
        proto = real(model, size, opset)
        out = proto.graph.output[0].name
        for i in range(2):
            proto.graph.node.append(onnx.helper.make_node("Mystery", [out], [f"mystery_{i}"], domain="com.example"))
        return proto

    monkeypatch.setattr(onnx_export, "torch_to_onnx", with_unknown_ops)
    with pytest.raises(DeployError, match="TVM cannot compile topformer_tiny") as err:
        compile_bundle("topformer_tiny", "tvm", tmp_path / "b", arch="host", input_size=64)
    assert "Mystery" in str(err.value) and "2" in str(err.value)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_check_names_what_the_actual_lowering_left_outside_xnnpack(bundles: dict,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`mvd check --target executorch` (before any compile) against the bundle's real partition."""
    code = main(["check", "topformer_tiny", "--target", "executorch", "--input-size", "64", "--json"])
    scanned = {u["op"]: u["count"] for u in json.loads(capsys.readouterr().out)["unsupported"]}
    report = json.loads((bundles[("topformer_tiny", "executorch", "host")] / "report.json").read_text())
    assert scanned == report["build"]["delegation"]["non_delegated"]
    # the XNNPACK-friendly passes leave nothing outside; the plain partition had the 16 attention expand_copy
    assert code == 0 and scanned == {}
    assert report["build"]["xnnpack_passes"]["non_delegated_before"]["aten.expand_copy.default"] == 16


@pytest.mark.parametrize(("argv", "message"), [
    (["check", "topformer_tiny", "--target", "tflite"], "unknown target 'tflite'"),
    (["check", "model.onnx", "--target", "executorch"], "ExecuTorch lowers PyTorch programs, not ONNX files"),
    (["check", "missing.onnx", "--target", "tvm"], "ONNX file not found: missing.onnx"),
])
def test_check_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_check_an_unreadable_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot protobuf" * 10)
    assert main(["check", str(bad), "--target", "onnxruntime"]) == 2
    assert "is not a readable ONNX file" in capsys.readouterr().err


def test_check_a_zoo_model_for_tvm_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "casvit_xs_seg", "--target", "tvm", "--input-size", "64"]) == 0
    assert "tvm: all 11 op types supported" in capsys.readouterr().out
