"""``mvd compile``: model → verified ONNX → TVM library or ExecuTorch program → runner → bundle folder.

Every check that can fail fast (target, CPU profile, cross compiler, input size, checkpoint, op support) runs
before the slow stages; the bundle is written atomically at the very end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilevit_deploy.artifact_cache import cached_build, model_fingerprint
from mobilevit_deploy.bundle.checksums import sha256_file
from mobilevit_deploy.bundle.classes import class_table
from mobilevit_deploy.bundle.metadata import input_spec, output_spec
from mobilevit_deploy.bundle.writer import write_bundle
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.export import export_onnx, onnx_export
from mobilevit_deploy.export.verify import run_onnxruntime, seeded_image_batch
from mobilevit_deploy.models import create_model, model_info

TARGETS = ("tvm", "executorch", "onnx")
ARCHES = ("host", "aarch64")
DEFAULT_AARCH64_CPU = "cortex-a76"
REFERENCE_SEED = 2024
_RUNTIME = {"tvm": "tvm", "executorch": "executorch", "onnx": "onnxruntime"}
_ARTIFACT_NAME = {"tvm": "model.so", "executorch": "model.pte", "onnx": "model.onnx"}
CROSS_COMPILER = ("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")

Log = Callable[[str], None]


@dataclass
class CompileResult:
    bundle: Path
    stages: dict[str, float] = field(default_factory=dict)
    artifact_bytes: int = 0
    runtime_lib_bytes: int = 0
    report: dict[str, Any] = field(default_factory=dict)


def _check_request(target: str, arch: str, cpu: str | None) -> str:
    """Validate target/arch/cpu and the toolchain; return the CPU profile name to build for."""
    from mobilevit_deploy.targets.cpu_profiles import get_profile

    if target not in TARGETS:
        raise DeployError(f"unknown target '{target}'", hint=f"valid targets: {', '.join(TARGETS)}")
    if arch not in ARCHES:
        raise DeployError(f"unknown arch '{arch}'", hint=f"valid arches: {', '.join(ARCHES)}")
    profile = get_profile(cpu or ("host" if arch == "host" else DEFAULT_AARCH64_CPU))
    if profile.arch != arch:
        raise DeployError(f"CPU profile '{profile.name}' is for {profile.arch}, not {arch}",
                          hint="use --cpu host with --arch host, or an ARM profile with --arch aarch64")
    if target == "onnx" and arch != "host":
        raise DeployError("ONNX bundles run on the host (ONNX Runtime is the reference runtime)",
                          hint="use --arch host, or --target tvm/executorch for ARM")
    if arch == "aarch64" and shutil.which(CROSS_COMPILER[0]) is None:
        raise DeployError(f"the cross compiler {CROSS_COMPILER[0]} is not installed",
                          hint=f"apt-get install {CROSS_COMPILER[1]} (tools/bootstrap.sh does it)")
    return profile.name


def compile_bundle(model_name: str, target: str, out_dir: str | Path, arch: str = "aarch64", cpu: str | None = None,
                   input_size: int | None = None, checkpoint: str | Path | None = None, strict: bool = True,
                   log: Log | None = None, tuning_db: str | Path | None = None) -> CompileResult:
    """Build one bundle folder; see the module docstring for the stages.

    TVM builds apply the MetaSchedule records of ``mvd tune`` (from ``tuning_db``, or the records store); the
    report's ``build.tuning`` and the metadata's ``target.tuning`` say whether they did.
    """
    log = log or (lambda _msg: None)
    out_dir = Path(out_dir)
    profile = _check_request(target, arch, cpu)
    info = model_info(model_name)
    size = input_size or info.default_input_size
    info.check_input_size(size)
    model = create_model(model_name, checkpoint=checkpoint, strict=strict)
    result = CompileResult(bundle=out_dir)
    report: dict[str, Any] = {"model": model_name, "target": target, "arch": arch, "cpu": profile,
                              "input_size": size, "checkpoint": str(checkpoint) if checkpoint else None}
    if model.load_report is not None:
        log(f"checkpoint: {model.load_report.summary()}")
        report["checkpoint_load"] = model.load_report.summary()
    else:
        log(f"checkpoint: none given, {model_name} has random (seeded) weights")

    with tempfile.TemporaryDirectory(prefix="mvd-compile-") as work_dir:
        work = Path(work_dir)
        files: dict[str, Path] = {}

        def stage(name: str) -> Callable[[], None]:
            log(f"[{len(result.stages) + 1}] {name} ...")
            tick = time.perf_counter()
            return lambda: result.stages.__setitem__(name, round(time.perf_counter() - tick, 3))

        done = stage("export ONNX")
        raw_onnx = onnx_export.torch_to_onnx(model, size)
        done()

        done = stage("scan ops")
        report["op_scan"] = _scan(target, model, raw_onnx)
        done()

        done = stage("ONNX passes + verify")
        onnx_path = work / "exported.onnx"
        export = export_onnx(model, onnx_path, size, verify_each=False, exported=raw_onnx)
        report["export"] = {"seconds": export.total_seconds, "rel_max_diff": export.agreement.rel_max_diff,
                            "argmax_agreement": export.agreement.argmax_agreement, "ops": export.op_histogram}
        done()

        done = stage("reference output (ONNX Runtime)")
        reference_input = seeded_image_batch(size, REFERENCE_SEED)
        reference_output = run_onnxruntime(onnx_path, reference_input)
        done()

        artifact_name = _ARTIFACT_NAME[target]
        done = stage({"tvm": "compile + link (TVM)", "executorch": "lower to XNNPACK (ExecuTorch)",
                      "onnx": "copy ONNX"}[target])
        artifact_path = work / artifact_name
        if target == "tvm":
            report["build"], hit = _build_tvm(onnx_path, artifact_path, profile, tuning_db, log,
                                              f"mvd tune {model_name} --target tvm --arch {arch} --cpu {profile} "
                                              f"--input-size {size}"
                                              + (" --rpc-tracker HOST:PORT --rpc-key KEY" if arch != "host" else ""))
        elif target == "executorch":
            from mobilevit_deploy.targets.executorch_passes import lowering_digest
            from mobilevit_deploy.targets.executorch_target import build_executorch

            parts = {"model": model_fingerprint(model), "input_size": size, "lowering": lowering_digest()}
            report["build"], hit = cached_build("executorch", parts, artifact_path,
                                                lambda dest: build_executorch(model, size, dest).report)
        else:
            shutil.copy2(onnx_path, artifact_path)
            hit = False
        if hit:
            log("    reused the cached artifact (same weights, model code, size and toolchain)")
        files[artifact_name] = artifact_path
        result.artifact_bytes = artifact_path.stat().st_size
        done()

        runner_meta: dict[str, Any] = {}
        if target != "onnx":
            from mobilevit_deploy.targets.runner_build import build_runner

            done = stage(f"build runner ({arch})")
            runner = build_runner(_RUNTIME[target], arch)
            runner_meta = {"runner": f"runner/{runner.binary.name}",
                           "libs": [f"runner/{lib.name}" for lib in runner.libs]}
            files[runner_meta["runner"]] = runner.binary
            for lib in runner.libs:
                files[f"runner/{lib.name}"] = lib
            result.runtime_lib_bytes = sum(lib.stat().st_size for lib in runner.libs)
            report["runner"] = {"link_line": list(runner.link_line)}
            done()

        done = stage("write bundle")
        from mobilevit_deploy.targets.cpu_profiles import get_profile

        metadata = _metadata(model, size, target, arch, profile, artifact_name, runner_meta,
                             list(reference_output.shape), get_profile(profile).qemu_cpu)
        if target == "tvm":
            tuning = report["build"].get("tuning", {})
            metadata["target"]["tuning"] = {"tuned": bool(tuning.get("tuned")),
                                            "databases": tuning.get("databases", [])}
        report["stages"] = result.stages
        report["sizes"] = {"artifact_bytes": result.artifact_bytes, "runtime_lib_bytes": result.runtime_lib_bytes}
        write_bundle(out_dir, metadata, files, reference_input, reference_output, report)
        done()
    result.report = report
    return result


def _build_tvm(onnx_path: Path, dest: Path, profile: str, tuning_db: str | Path | None, log: Log,
               tune_command: str) -> tuple[dict[str, Any], bool]:
    """The TVM library through the artifact cache (keyed by the tuning records too); logs whether it is tuned."""
    from mobilevit_deploy.targets.cpu_profiles import get_profile
    from mobilevit_deploy.targets.tvm_records import UntunedWarning, records_fingerprint
    from mobilevit_deploy.targets.tvm_target import build_tvm

    parts: dict[str, Any] = {"onnx": sha256_file(onnx_path), "profile": profile}
    records = records_fingerprint(get_profile(profile), db=tuning_db)
    if records is not None:  # only then: untuned entries cached before tuning existed stay valid
        parts["tuning_records"] = records
    with warnings.catch_warnings():  # logged below, with the exact command, instead of a Python warning
        warnings.simplefilter("ignore", UntunedWarning)
        build, hit = cached_build("tvm", parts, dest, lambda d: build_tvm(onnx_path, d, profile,
                                                                          tuning_db=tuning_db).report)
    tuning = build.get("tuning", {})
    if tuning.get("tuned"):
        log(f"    tuned: records for {tuning['tasks_with_records']}/{tuning['tasks']} kernels from "
            f"{', '.join(tuning['databases'])}")
    else:
        where = ", ".join(tuning.get("databases", [])) or "the records store"
        log(f"    WARNING: untuned TVM library (no tuning records match in {where}); untuned code is 20-50x "
            f"slower. Tune first: {tune_command}{f' --db {tuning_db}' if tuning_db else ''}")
    return build, hit


def _scan(target: str, model: Any, exported: Any) -> dict[str, Any]:
    """The op-support scan of the target on the exported graph, before any lowering; a TVM gap stops here."""
    if target == "executorch":  # every op runs (portable kernels catch what XNNPACK does not take): the lowering's
        return {"target": "executorch", "note": "see build.delegation for the ops left outside XNNPACK"}
    if target == "tvm":
        from mobilevit_deploy.targets.tvm_support import scan_onnx_for_tvm

        scan = scan_onnx_for_tvm(exported)
        if not scan.ok:
            raise DeployError(f"TVM cannot compile {model.info.name}:\n{scan.format_table()}",
                              hint="try --target executorch or onnx")
        return scan.to_dict()
    return {"target": "onnxruntime", "note": "ONNX Runtime runs every op the exporter writes (verified at export)"}


def _metadata(model: Any, size: int, target: str, arch: str, profile: str, artifact: str,
              runner: dict[str, Any], output_shape: list[int], qemu_cpu: str | None) -> dict[str, Any]:
    info = model.info
    meta: dict[str, Any] = {
        "model": {"name": info.name, "family": info.family, "task": info.task.value, "num_classes":
                  output_shape[1], "paper": info.paper},
        "target": {"runtime": _RUNTIME[target], "arch": arch, "cpu": profile, "qemu_cpu": qemu_cpu,
                   "artifact": artifact, **runner},
        "input": input_spec(size, info.mean, info.std),
        "output": output_spec(output_shape, info.task.value, info.output_stride),
    }
    if info.task.value == "segmentation":
        meta["classes"] = class_table(output_shape[1])
    return meta
