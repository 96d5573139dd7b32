"""The app backend end to end on a TopFormer-T bundle and a real photo: the Python pipeline (`mvd eval`'s bundle
predictor), libmvdseg through ctypes, MvdSegmenter through JNI on the host JVM, and the C driver under
qemu-aarch64 give identical label maps; bad frames and bad bundles give a status and a message.

Bundles are TopFormer-T at 64x64 with the shipped demo checkpoint (random weights label every pixel of a photo
alike; the demo weights, trained on 24 of the head's 150 outputs, give ~10 classes on it). The photo is
tests/data/photos/china.jpg (CC BY 2.0, see the README there). Native calls run in a fresh process
(app_backend_native.py) so no second copy of a runtime shares this process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from app_backend_native import run_native

from mobilevit_deploy.bundle import load_bundle
from mobilevit_deploy.checkpoints import default_checkpoint
from mobilevit_deploy.cli.eval_cmd import bundle_predictor
from mobilevit_deploy.compile import compile_bundle
from mobilevit_deploy.data.images import read_rgb
from mobilevit_deploy.data.preprocess import logits_to_label
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.app_backend import AppBackendError, build_app_backend, build_app_library
from mobilevit_deploy.targets.app_backend.frames import nv21_to_rgb, rgb_to_nv21, rgb_to_rgba
from mobilevit_deploy.targets.runner_build import AARCH64_SYSROOT, QEMU, QEMU_CPU

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photos" / "china.jpg"
JAVA_CHECK = Path(__file__).parent / "java" / "MvdSegmenterCheck.java"
BUNDLES = {"executorch-host": ("executorch", "host"), "tvm-host": ("tvm", "host"),
           "executorch-aarch64": ("executorch", "aarch64")}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("app_bundles")
    weights = default_checkpoint("topformer_tiny")
    return {name: compile_bundle("topformer_tiny", target, root / name, arch=arch, input_size=64,
                                 checkpoint=weights).bundle for name, (target, arch) in BUNDLES.items()}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_rgb(PHOTO)  # 427 x 640: odd height


@pytest.fixture(scope="module")
def host_app(bundles: dict[str, Path]) -> Path:
    """The host app backend packed into the ExecuTorch bundle: app/lib/host/ + app/mvdseg.jar."""
    return build_app_backend(bundles["executorch-host"]).folder


def python_labels(bundle: Path, rgb: np.ndarray) -> np.ndarray:
    """What `mvd eval` predicts for this image with this bundle (its runner, its metadata's preprocessing)."""
    _, predict, pre, _ = bundle_predictor(bundle)
    return logits_to_label(predict(pre(rgb)), rgb.shape[:2])[0].astype(np.uint8)


def segment_ops(bundle: Path, frames: dict[str, np.ndarray], work: Path, **extra: object) -> list[dict]:
    ops = []
    for name, rgb in frames.items():
        np.save(work / f"{name}.npy", rgb_to_rgba(rgb, alpha=7))
        ops.append({"op": "segment", "bundle": str(bundle), "frame": str(work / f"{name}.npy"),
                    "out": str(work / f"{name}.labels.npy"), **extra})
    return ops


def run_java(app: Path, jobs: list[str], work: Path) -> list[dict]:
    """Compile the test main against app/mvdseg.jar and run it on the host JVM with app/lib/host."""
    classes = work / "java-classes"
    jar = app / "mvdseg.jar"
    subprocess.run(["javac", "-cp", str(jar), "-d", str(classes), str(JAVA_CHECK)], check=True, capture_output=True)
    (work / "jobs.txt").write_text("\n".join(jobs) + "\n")
    proc = subprocess.run(["java", f"-Djava.library.path={app / 'lib' / 'host'}", "-cp", f"{jar}:{classes}",
                           "MvdSegmenterCheck", str(work / "jobs.txt")], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------------------------------ same label map


@pytest.mark.slow
def test_photo_gives_one_label_map_in_python_ctypes_and_java(bundles: dict, host_app: Path, photo: np.ndarray,
                                                             tmp_path: Path) -> None:
    bundle = bundles["executorch-host"]
    expected = python_labels(bundle, photo)
    assert len(np.unique(expected)) >= 5  # a real map with several classes, not a constant

    [native] = run_native(host_app / "lib" / "host" / "libmvdseg.so",
                          segment_ops(bundle, {"photo": photo}, tmp_path, colors=True), tmp_path)
    assert native["status"] == 0 and native["classes"] == 150  # the demo head keeps ADE20K's 150 outputs
    assert native["names"] == ["wall", "flag", None]  # ADE20K's first and last; NULL out of range
    np.testing.assert_array_equal(np.load(tmp_path / "photo.labels.npy"), expected)
    palette = np.array(load_bundle(bundle).metadata["classes"]["palette"], np.uint8)
    colors = np.load(tmp_path / "photo.labels.npy.colors.npy")
    np.testing.assert_array_equal(colors[..., :3], palette[expected])
    assert (colors[..., 3] == 255).all()

    h, w = photo.shape[:2]
    rgb_to_rgba(photo).tofile(tmp_path / "photo.rgba")
    [java] = run_java(host_app, [f"{bundle} {tmp_path / 'photo.rgba'} rgba {w} {h} {tmp_path / 'java.labels'} "
                                 f"{w * h}"], tmp_path)
    assert java["status"] == 0 and java["classes"] == 150 and java["class0"] == "wall"
    np.testing.assert_array_equal(np.fromfile(tmp_path / "java.labels", np.uint8).reshape(h, w), expected)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "java.labels.rgba", np.uint8).reshape(h, w, 4), colors)
    assert java["inference_ms"] > 0 and java["postprocess_ms"] > 0


@pytest.mark.slow
def test_odd_portrait_tiny_and_padded_frames_match_python(bundles: dict, host_app: Path, photo: np.ndarray,
                                                          tmp_path: Path) -> None:
    bundle = bundles["executorch-host"]
    frames = {"odd_width": photo[:300, :333], "portrait": photo[:, 200:441], "one_pixel": photo[200:201, 300:301],
              "tiny": photo[:37, :53]}
    ops = segment_ops(bundle, frames, tmp_path)
    padded = np.zeros((120, 64, 4), np.uint8)  # a 45-pixel-wide frame in rows of 64 pixels (stride 256 bytes)
    padded[:, :45] = rgb_to_rgba(photo[100:220, 100:145])
    np.save(tmp_path / "padded.npy", padded)
    ops.append({"op": "segment", "bundle": str(bundle), "frame": str(tmp_path / "padded.npy"), "stride": 256,
                "width": 45, "out": str(tmp_path / "padded.labels.npy")})
    results = run_native(host_app / "lib" / "host" / "libmvdseg.so", ops, tmp_path)
    assert all(r["status"] == 0 for r in results), results
    for name, rgb in frames.items():
        got = np.load(tmp_path / f"{name}.labels.npy")
        assert got.shape == rgb.shape[:2]
        np.testing.assert_array_equal(got, python_labels(bundle, np.ascontiguousarray(rgb)), err_msg=name)
    # rows 256 bytes apart, 45 pixels used: the padding is never read
    np.testing.assert_array_equal(np.load(tmp_path / "padded.labels.npy"),
                                  python_labels(bundle, np.ascontiguousarray(photo[100:220, 100:145])))


@pytest.mark.slow
def test_nv21_frames_match_python_on_the_same_pixels(bundles: dict, host_app: Path, photo: np.ndarray,
                                                     tmp_path: Path) -> None:
    bundle = bundles["executorch-host"]
    frame = photo[:426]  # NV21 needs even sides
    nv21 = rgb_to_nv21(frame)
    h, w = frame.shape[:2]
    rgb = nv21_to_rgb(nv21, w, h)  # the picture the camera frame holds, decoded as libmvdseg decodes it
    assert np.abs(rgb.astype(int) - frame).mean() < 3  # the round trip is close, not exact (4:2:0 chroma)
    expected = python_labels(bundle, rgb)
    np.save(tmp_path / "nv21.npy", nv21)
    [native] = run_native(host_app / "lib" / "host" / "libmvdseg.so", [
        {"op": "segment", "bundle": str(bundle), "frame": str(tmp_path / "nv21.npy"), "format": "nv21",
         "width": w, "height": h, "out": str(tmp_path / "nv21.labels.npy")}], tmp_path)
    assert native["status"] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "nv21.labels.npy"), expected)
    nv21.tofile(tmp_path / "frame.nv21")
    [java] = run_java(host_app, [f"{bundle} {tmp_path / 'frame.nv21'} nv21 {w} {h} {tmp_path / 'j.labels'} {w * h}"],
                      tmp_path)
    assert java["status"] == 0
    np.testing.assert_array_equal(np.fromfile(tmp_path / "j.labels", np.uint8).reshape(h, w), expected)


@pytest.mark.slow
def test_tvm_bundle_gives_the_python_label_map(bundles: dict, photo: np.ndarray, tmp_path: Path) -> None:
    bundle = bundles["tvm-host"]
    library = build_app_library("tvm", "host").library
    [native] = run_native(library, segment_ops(bundle, {"photo": photo}, tmp_path), tmp_path)
    assert native["status"] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "photo.labels.npy"), python_labels(bundle, photo))


@pytest.mark.slow
def test_c_driver_under_qemu_gives_the_python_label_map(bundles: dict, photo: np.ndarray, tmp_path: Path) -> None:
    bundle = bundles["executorch-aarch64"]
    app = build_app_backend(bundle, "aarch64")
    assert app.library.library.read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64
    frame = photo[:, 160:480]  # 427 x 320 keeps emulated post-processing short
    h, w = frame.shape[:2]
    rgb_to_rgba(frame).tofile(tmp_path / "frame.rgba")
    driver = app.lib_dir / "mvdseg_driver"
    cmd = [QEMU, "-cpu", QEMU_CPU, "-L", AARCH64_SYSROOT, "-E", f"LD_LIBRARY_PATH={app.lib_dir}", str(driver),
           str(bundle), str(tmp_path / "frame.rgba"), str(w), str(h), str(tmp_path / "out.labels"), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["runtime"] == "executorch" and report["classes"] == 150
    labels = np.fromfile(tmp_path / "out.labels", np.uint8).reshape(h, w)
    np.testing.assert_array_equal(labels, python_labels(bundle, np.ascontiguousarray(frame)))  # runner under qemu

    bad = subprocess.run([*cmd[:8], str(bundle), str(tmp_path / "frame.rgba"), "0", str(h), "x"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "MVD_ERR_FRAME_SIZE: WIDTH and HEIGHT must be 1..4096" in bad.stderr


@pytest.mark.slow
def test_one_handle_per_thread_gives_the_single_thread_result(bundles: dict, host_app: Path, photo: np.ndarray,
                                                              tmp_path: Path) -> None:
    bundle = bundles["executorch-host"]
    frame = photo[:200, :300]
    np.save(tmp_path / "f.npy", rgb_to_rgba(frame))
    [result] = run_native(host_app / "lib" / "host" / "libmvdseg.so", [
        {"op": "parallel", "bundle": str(bundle), "frame": str(tmp_path / "f.npy"), "handles": 3, "repeats": 3,
         "out": str(tmp_path / "all.npy")}], tmp_path)
    assert result["status"] == 0, result
    maps = np.load(tmp_path / "all.npy")
    assert maps.shape == (9, 200, 300)
    expected = python_labels(bundle, np.ascontiguousarray(frame))
    assert all(np.array_equal(m, expected) for m in maps)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.slow
def test_frames_it_cannot_take_get_a_status_and_a_message(bundles: dict, host_app: Path, tmp_path: Path) -> None:
    bundle = str(bundles["executorch-host"])
    np.save(tmp_path / "small.npy", np.zeros((4, 4, 4), np.uint8))
    np.save(tmp_path / "wide.npy", np.zeros((2, 4097, 4), np.uint8))
    np.save(tmp_path / "empty.npy", np.zeros((0, 5, 4), np.uint8))
    np.save(tmp_path / "nv21.npy", np.zeros(641 * 480 * 2, np.uint8))
    base = {"op": "segment", "bundle": bundle, "out": str(tmp_path / "o.npy")}
    cases = {
        "odd NV21 width": ({"frame": str(tmp_path / "nv21.npy"), "format": "nv21", "width": 641, "height": 480},
                           "MVD_ERR_FRAME_SIZE", "NV21 frame 641x480 has an odd side; NV21 subsamples colour 2x2, "
                           "so both sides must be even"),
        "larger than 4K": ({"frame": str(tmp_path / "wide.npy")}, "MVD_ERR_FRAME_SIZE",
                           "frame 4097x2 is larger than 4096 on a side; downscale it first"),
        "empty": ({"frame": str(tmp_path / "empty.npy")}, "MVD_ERR_FRAME_SIZE",
                  "frame 5x0 is empty; pass its real size"),
        "short stride": ({"frame": str(tmp_path / "small.npy"), "stride": 12}, "MVD_ERR_INVALID_ARGUMENT",
                         "stride 12 is shorter than a row of the 4x4 frame (16 bytes); "
                         "pass the buffer's bytes per row"),
    }
    results = run_native(host_app / "lib" / "host" / "libmvdseg.so",
                         [{**base, **op} for op, _, _ in cases.values()], tmp_path)
    for (case, (_, name, message)), result in zip(cases.items(), results, strict=True):
        assert (result["name"], result["message"]) == (name, message), case

    # Through Java: the JNI bridge checks array lengths the C API cannot see, and an odd NV21 frame.
    np.zeros(640 * 480 * 4, np.uint8).tofile(tmp_path / "f.rgba")
    java = run_java(host_app, [f"{bundle} {tmp_path / 'f.rgba'} rgba 640 480 {tmp_path / 'j'} 100",
                               f"{bundle} {tmp_path / 'f.rgba'} nv21 641 480 {tmp_path / 'j'} {641 * 480}"], tmp_path)
    assert java[0]["status"] == 1 and java[0]["message"] == (
        "MVD_ERR_INVALID_ARGUMENT: labels holds 100 bytes, needs width*height = 307200")
    assert java[1]["status"] == 2 and "NV21 frame 641x480 has an odd side" in java[1]["message"]


def _flip_artifact_byte(root: Path) -> None:
    with (root / "model.pte").open("r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))


CORRUPTIONS = {  # edit -> (status, message pattern)
    "flipped artifact byte": (_flip_artifact_byte, "MVD_ERR_BUNDLE_MODIFIED",
                              r"was modified: model\.pte does not match its checksum; rebuild it with `mvd compile`, "
                              r"or restore the original file$"),
    "missing artifact": (lambda root: (root / "model.pte").unlink(), "MVD_ERR_BUNDLE_MODIFIED",
                         r"is incomplete: model\.pte is missing; copy the whole bundle folder"),
    "truncated metadata": (lambda root: (root / "metadata.json").write_text(
        (root / "metadata.json").read_text()[:300]), "MVD_ERR_BUNDLE_INVALID",
        r"metadata\.json is not valid JSON \(.+ at line \d+, column \d+\); rebuild the bundle with `mvd compile`$"),
    "no metadata": (lambda root: (root / "metadata.json").unlink(), "MVD_ERR_BUNDLE_NOT_FOUND",
                    r"is not a bundle: it has no metadata\.json; rebuild the bundle with `mvd compile`$"),
}


@pytest.mark.slow
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_bundle_is_refused_with_a_clear_message(bundles: dict, host_app: Path, tmp_path: Path,
                                                          corruption: str) -> None:
    edit, name, message = CORRUPTIONS[corruption]
    root = tmp_path / "bundle"
    shutil.copytree(bundles["executorch-host"], root, ignore=shutil.ignore_patterns("app"))
    edit(root)
    [result] = run_native(host_app / "lib" / "host" / "libmvdseg.so", [{"op": "open", "bundle": str(root)}],
                          tmp_path)
    assert result["name"] == name and re.search(message, result["message"]), result


def _edit_metadata(root: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((root / "metadata.json").read_text())
    change(meta)
    (root / "metadata.json").write_text(json.dumps(meta))


def _claim_input_96(meta: dict) -> None:
    meta["input"]["shape"] = [1, 3, 96, 96]
    meta["input"]["resize"].update(height=96, width=96)


MISMATCHES = {
    "bundle of the other runtime": ("tvm-host", None, "MVD_ERR_BUNDLE_MISMATCH",
                                    "runs on tvm but this libmvdseg was built for executorch"),
    "metadata input size unlike the program's": (
        "executorch-host", _claim_input_96, "MVD_ERR_BUNDLE_MISMATCH",
        "metadata.json says the input is 1x3x96x96 but"),
    "classification metadata": ("executorch-host", lambda m: m["model"].update(task="classification"),
                                "MVD_ERR_BUNDLE_MISMATCH", "holds a classification model (topformer_tiny)"),
    "aspect-keeping resize": ("executorch-host", lambda m: m["input"]["resize"].update(keep_ratio=True),
                              "MVD_ERR_BUNDLE_MISMATCH", "asks for an aspect-keeping resize"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mismatch", list(MISMATCHES))
def test_a_mismatched_bundle_is_refused_with_a_clear_message(bundles: dict, host_app: Path, tmp_path: Path,
                                                             mismatch: str) -> None:
    source, change, name, message = MISMATCHES[mismatch]
    root = tmp_path / "bundle"
    shutil.copytree(bundles[source], root, ignore=shutil.ignore_patterns("app"))
    if change is not None:
        _edit_metadata(root, change)
    [result] = run_native(host_app / "lib" / "host" / "libmvdseg.so", [{"op": "open", "bundle": str(root)}],
                          tmp_path)
    assert result["name"] == name and message in result["message"], result


@pytest.mark.slow
def test_java_reports_a_corrupt_bundle_as_an_exception(bundles: dict, host_app: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shutil.copytree(bundles["executorch-host"], root, ignore=shutil.ignore_patterns("app"))
    _flip_artifact_byte(root)
    np.zeros(16, np.uint8).tofile(tmp_path / "f.rgba")
    [java] = run_java(host_app, [f"{root} {tmp_path / 'f.rgba'} rgba 2 2 {tmp_path / 'j'} 4"], tmp_path)
    assert java["status"] == 5 and java["name"] == "MVD_ERR_BUNDLE_MODIFIED"
    assert "model.pte does not match its checksum" in java["message"]


# ------------------------------------------------------------------------------------------------ packaging


@pytest.mark.slow
def test_app_backend_is_packed_into_the_bundle(bundles: dict, host_app: Path) -> None:
    bundle = load_bundle(bundles["executorch-host"])  # still verifies: metadata and artifact untouched
    manifest = json.loads((host_app / "manifest.json").read_text())
    assert manifest["runtime"] == "executorch" and "host" in manifest["arches"]
    for name in ("libmvdseg.so", "libmvdseg_jni.so", "libexecutorch.so", "libexecutorch_backend_xnnpack.so",
                 "mvdseg_driver"):
        assert f"lib/host/{name}" in manifest["files"]
    with zipfile.ZipFile(host_app / "mvdseg.jar") as jar:
        names = set(jar.namelist())
    assert {"org/mobilevitdeploy/seg/MvdSegmenter.class", "org/mobilevitdeploy/seg/MvdException.class"} <= names
    note = (host_app / "INTEGRATION.md").read_text()
    for needle in ('System.loadLibrary("mvdseg_jni")', "implementation files('libs/mvdseg.jar')", "jniLibs/arm64-v8a",
                   f"`metadata.json`, `{bundle.metadata['target']['artifact']}`", "segmentNv21"):
        assert needle in note
    assert (host_app / "include" / "mvdseg.h").read_text().count("MVD_API int mvd_segment_") == 2


@pytest.mark.slow
def test_tvm_app_backend_for_another_arch_is_refused(bundles: dict) -> None:
    with pytest.raises(AppBackendError, match="holds a TVM library compiled for host, not aarch64"):
        build_app_backend(bundles["tvm-host"], "aarch64")


def test_builds_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    with pytest.raises(DeployError, match=r"arch android-arm64 needs the Android NDK \(set ANDROID_NDK_HOME\)"):
        build_app_library("executorch", "android-arm64")
    with pytest.raises(AppBackendError, match=r"unknown arch 'riscv64' \(choose one of host, aarch64, android-arm64\)"):
        build_app_library("executorch", "riscv64")
    with pytest.raises(AppBackendError, match=r"unknown runtime 'onnxruntime' \(choose one of executorch, tvm\)"):
        build_app_library("onnxruntime", "host")
