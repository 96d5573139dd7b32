"""``mvd verify``: run a bundle's runner where it belongs (host, or aarch64 under qemu) on the stored reference
input and compare with the stored ONNX Runtime output."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilevit_deploy.export.verify import Agreement, compare_outputs, run_onnxruntime

from .reader import Bundle, load_bundle

REL_TOLERANCE = 1e-4
MIN_AGREEMENT = 0.999


@dataclass(frozen=True)
class VerifyResult:
    bundle: Path
    where: str
    agreement: Agreement
    runner: object | None  # RunnerResult for runner bundles

    @property
    def passed(self) -> bool:
        return self.agreement.ok(REL_TOLERANCE, MIN_AGREEMENT)


def run_bundle_locally(bundle: Bundle, x: np.ndarray, warmup: int = 0, iters: int = 1,
                       threads: int = 1) -> tuple[np.ndarray, object | None, str]:
    """Run the bundle's artifact on this machine: ONNX Runtime, the host runner, or the aarch64 runner under qemu."""
    if bundle.runtime == "onnxruntime":
        return run_onnxruntime(bundle.artifact, x), None, "host (ONNX Runtime)"
    from mobilevit_deploy.targets.runner_build import QEMU_CPU, RunnerBuild, run_runner

    runner, *libs = bundle.runner_files
    build = RunnerBuild(bundle.runtime, bundle.arch, runner, tuple(libs), ())
    qemu_cpu = bundle.metadata["target"].get("qemu_cpu") or QEMU_CPU
    with tempfile.TemporaryDirectory(prefix="mvd-verify-") as tmp:
        input_npy, output_npy = Path(tmp) / "input.npy", Path(tmp) / "output.npy"
        np.save(input_npy, x.astype(np.float32))
        result = run_runner(build, bundle.artifact, input_npy, output_npy, warmup=warmup, iters=iters,
                            threads=threads, qemu_cpu=qemu_cpu)
        out = np.load(output_npy)
    where = "host" if bundle.arch == "host" else f"aarch64 under qemu-aarch64 -cpu {qemu_cpu}"
    return out, result, where


def verify_bundle(path: str | Path) -> VerifyResult:
    bundle = load_bundle(path)
    x, reference = bundle.reference()
    out, runner, where = run_bundle_locally(bundle, x)
    return VerifyResult(Path(path), where, compare_outputs(out, reference), runner)
