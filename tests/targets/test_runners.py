"""The C++ runners end to end: built for host and aarch64, run natively or under qemu, checked against PyTorch.

The first run compiles four runners and fetches the aarch64 wheels (~35 s); later runs take them from the cache.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets import runner_build
from mobilevit_deploy.targets.runner_build import build_runner, parse_runner_json, run_runner, runner_command

AARCH64_TARGET = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
GOOD_LINE = (
    '{"runtime": "tvm", "runtime_version": "0.27", "threads": 2, "load_ms": 1.5, "iter_us": [10.0, 11.5], '
    '"peak_rss_kb": 4096, "output_shape": [1, 8, 8, 5], "output_dtype": "float32"}'
)


class ConvLinear(torch.nn.Module):
    """Small enough to export in seconds, yet uses the delegated (conv, linear) and non-delegated paths."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).permute(0, 2, 3, 1))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A .pte, a host and an aarch64 TVM library of the same module, its input and its PyTorch output."""
    import tvm
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from tvm.relax.frontend.torch import from_exported_program
    from tvm.support.cc import cross_compiler

    out = tmp_path_factory.mktemp("runner_artifacts")
    torch.manual_seed(0)
    model = ConvLinear().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        np.save(out / "ref.npy", model(x).numpy())
    np.save(out / "x.npy", x.numpy())

    program = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
    (out / "model.pte").write_bytes(program.to_executorch().buffer)

    mod = from_exported_program(torch.export.export(model, (x,)))
    tvm.compile(mod, target="llvm").export_library(str(out / "model_host.so"))
    tvm.compile(mod, target=tvm.target.Target(AARCH64_TARGET)).export_library(
        str(out / "model_aarch64.so"), fcompile=cross_compiler("aarch64-linux-gnu-g++")
    )
    return {"dir": out, "x": out / "x.npy", "ref": out / "ref.npy", "executorch": out / "model.pte",
            "tvm-host": out / "model_host.so", "tvm-aarch64": out / "model_aarch64.so"}


def _model(artifacts: dict[str, Path], runtime: str, arch: str) -> Path:
    return artifacts["executorch"] if runtime == "executorch" else artifacts[f"tvm-{arch}"]


# ------------------------------------------------------------------------------------------------ fast checks


def test_parse_runner_json_reads_a_good_line() -> None:
    res = parse_runner_json(GOOD_LINE)
    assert res.runtime == "tvm" and res.threads == 2 and res.output_shape == (1, 8, 8, 5)
    assert res.iter_us == (10.0, 11.5) and res.median_us == pytest.approx(10.75)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('{"runtime": "tvm", ', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (GOOD_LINE.replace('"peak_rss_kb": 4096, ', ""), "peak_rss_kb"),
        (GOOD_LINE.replace('"threads": 2', '"threads": "2"'), "threads"),
        (GOOD_LINE.replace("[10.0, 11.5]", '["fast"]'), "iter_us"),
        (GOOD_LINE.replace('"runtime": "tvm"', '"runtime": "onnx"'), "unknown runtime"),
    ],
)
def test_parse_runner_json_names_what_is_wrong(line: str, named: str) -> None:
    with pytest.raises(DeployError, match=named):
        parse_runner_json(line)


def test_missing_cross_compiler_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(runner_build.shutil, "which", lambda c: None if c == runner_build.CROSS_CXX else real_which(c))
    with pytest.raises(DeployError) as err:
        build_runner("tvm", "aarch64")
    assert "g++-aarch64-linux-gnu" in str(err.value)


def test_unknown_runtime_and_arch_are_refused() -> None:
    with pytest.raises(DeployError, match="unknown runtime"):
        build_runner("onnxruntime", "host")
    with pytest.raises(DeployError, match="unknown arch"):
        build_runner("tvm", "riscv64")


def test_compile_failure_shows_the_first_compiler_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "runners"
    sources.mkdir()
    (sources / "tvm_runner.cpp").write_text("int main() { return undefined_name; }\n")
    monkeypatch.setattr(runner_build, "SOURCES", sources)
    monkeypatch.setenv("MVD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DeployError, match="undefined_name"):
        build_runner("tvm", "host")


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["host", "aarch64"])
@pytest.mark.parametrize("runtime", ["executorch", "tvm"])
def test_runner_matches_pytorch(runtime: str, arch: str, artifacts: dict[str, Path]) -> None:
    build = build_runner(runtime, arch)
    start = time.perf_counter()
    assert build_runner(runtime, arch) == build, "a second build must come from the cache"
    assert time.perf_counter() - start < 1.0
    assert build.binary.exists() and all(lib.exists() and lib.parent == build.binary.parent for lib in build.libs)

    out = artifacts["dir"] / f"out_{runtime}_{arch}.npy"
    res = run_runner(build, _model(artifacts, runtime, arch), artifacts["x"], out, warmup=1, iters=3, threads=2)
    assert res.runtime == runtime and res.threads == 2 and len(res.iter_us) == 3
    assert res.output_dtype == "float32" and res.peak_rss_kb > 0 and res.load_ms >= 0
    ref = np.load(artifacts["ref"])
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == ref.shape == res.output_shape
    # Relative to the output's scale: elementwise rtol is meaningless for outputs near zero.
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "tvm"])
def test_runner_refuses_a_float64_input(runtime: str, artifacts: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "x64.npy"
    np.save(bad, np.load(artifacts["x"]).astype(np.float64))
    build = build_runner(runtime, "host")
    cmd = runner_command(build, _model(artifacts, runtime, "host"), bad, tmp_path / "o.npy", iters=1)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "'<f8'" in proc.stderr and "float32" in proc.stderr
    with pytest.raises(DeployError, match="exit code 2"):
        run_runner(build, _model(artifacts, runtime, "host"), bad, tmp_path / "o.npy", iters=1)


@pytest.mark.slow
@pytest.mark.parametrize(("runtime", "arch"), [("executorch", "host"), ("tvm", "host"), ("tvm", "aarch64")])
def test_runner_names_a_missing_model(runtime: str, arch: str, artifacts: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model.bin"
    cmd = runner_command(build_runner(runtime, arch), missing, artifacts["x"], tmp_path / "o.npy", iters=1)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert str(missing) in proc.stderr


def test_android_build_without_ndk_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    with pytest.raises(DeployError, match="ANDROID_NDK_HOME"):
        build_runner("executorch", "android-arm64")
