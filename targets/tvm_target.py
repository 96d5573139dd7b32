"""ONNX → TVM Relax → a shared library for the host or an ARM CPU profile, plus a host runner for tests.

Pipeline: ``from_onnx`` (weights bound as constants, static input shape from the file) → ``tvm.compile`` with the
profile's target dict → ``export_library``: for aarch64 linked by ``aarch64-linux-gnu-g++`` (glibc Linux), or
with ``ndk=True`` by the Android NDK's clang through ``tvm.support.ndk`` (needs ``ANDROID_NDK_HOME`` or
``TVM_NDK_CC``; not testable on this machine). The library needs only libc/libm; a runner loads it with
``libtvm_runtime``.

Speed: ``tvm.compile``'s ``"default"`` Relax pipeline on a CPU target legalizes ops to TIR and lowers to the VM,
with no fusion and **no schedule**: ``relax/vm_build.py`` picks the target-specific pipeline (with dlight) only
for GPU targets. ``relax.get_default_pipeline(cpu_target)`` adds FuseOps/FuseTIR but ran no faster, and TVM's own
comment says its fusion can drop side-effecting ``call_pure_packed`` calls, so it is not offered;
``tvm.s_tir.dlight.cpu`` has only GEMV/Reduction rules and made this model slower. Untuned code is ~40x slower
than ONNX Runtime; MetaSchedule tuning is the fix: ``mvd tune`` (``tvm_tuning``) stores records, and a build
applies those that match its kernels (``tvm_records``) and warns when none do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mobilevit_deploy.errors import DeployError

from .artifact import Artifact, elf_machine
from .cpu_profiles import CpuProfile, get_profile

CROSS_CXX = "aarch64-linux-gnu-g++"
CROSS_PACKAGE = "g++-aarch64-linux-gnu"
NDK_API_LEVEL = 24  # Android 7.0: the lowest level every current phone runs; only the linker wrapper name uses it


def _check_toolchain(profile: CpuProfile, ndk: bool) -> Callable[..., Any] | None:
    """The ``fcompile`` for ``export_library`` (None = TVM's host default), or ``DeployError`` before any work."""
    if profile.is_host:
        if ndk:
            raise DeployError("ndk=True needs an aarch64 profile, not 'host'")
        if shutil.which(os.environ.get("CXX") or "g++") is None and shutil.which("cc") is None:
            raise DeployError("no host C++ compiler found to link the TVM library", hint="apt-get install g++")
        return None
    if ndk:
        return _ndk_fcompile()
    if shutil.which(CROSS_CXX) is None:
        raise DeployError(f"cross compiler {CROSS_CXX} not found on PATH",
                          hint=f"install the Debian package {CROSS_PACKAGE} (apt-get install {CROSS_PACKAGE})")
    from tvm.support import cc

    return cc.cross_compiler(CROSS_CXX)


def _ndk_fcompile() -> Callable[..., Any]:
    """``tvm.support.ndk.create_shared`` with ``TVM_NDK_CC`` derived from ``ANDROID_NDK_HOME`` when unset.

    ``tvm.support.ndk`` reads ``TVM_NDK_CC`` from the environment when it links, so we set it (process-wide) to
    ``$ANDROID_NDK_HOME/toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android<API>-clang++``.
    """
    cc_path = os.environ.get("TVM_NDK_CC")
    if not cc_path:
        ndk_home = os.environ.get("ANDROID_NDK_HOME")
        if not ndk_home:
            raise DeployError("ndk=True needs the Android NDK",
                              hint="set ANDROID_NDK_HOME to the NDK folder (or TVM_NDK_CC to its clang++)")
        cc_path = str(Path(ndk_home) / "toolchains/llvm/prebuilt/linux-x86_64/bin"
                      / f"aarch64-linux-android{NDK_API_LEVEL}-clang++")
    if not (Path(cc_path).is_file() or shutil.which(cc_path)):
        raise DeployError(f"NDK compiler {cc_path} not found", hint="check ANDROID_NDK_HOME / TVM_NDK_CC")
    os.environ["TVM_NDK_CC"] = cc_path
    from tvm.support import ndk

    return ndk.create_shared


def _scan(model: onnx.ModelProto) -> dict[str, Any]:
    """Run the op-support scan (``tvm_support``) when present; raise with the full unsupported list.

    Scanning first turns "TVM died on node 412" into one message naming every op at once.
    """
    try:
        from .tvm_support import scan_onnx_for_tvm
    except ImportError as err:  # the scan module is optional; the compile itself is the fallback check
        return {"scan": f"unavailable ({err})"}
    report = scan_onnx_for_tvm(model)
    if not report.ok:
        names = ", ".join(f"{u.op} x{u.count}" for u in report.unsupported)
        raise DeployError(f"TVM does not support {len(report.unsupported)} op type(s) of this model: {names}\n"
                          + report.format_table(),
                          hint="use ExecuTorch for this model, or rewrite these ops in an export pass")
    return {"scan": "ok", "scan_ops": report.total_ops}


@contextlib.contextmanager
def _tmp_library(out_path: Path) -> Iterator[Path]:
    """A temporary ``.so`` next to ``out_path``, renamed on success (``export_library`` picks tar/so by suffix)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".so", dir=out_path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_qdq(model: onnx.ModelProto, onnx_path: Path) -> None:
    """``integer=True`` needs quantization to lower: refuse a float model before any work."""
    qdq = sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    if qdq == 0:
        raise DeployError(f"integer=True needs a QDQ model, but {onnx_path.name} has no QuantizeLinear/"
                          "DequantizeLinear nodes",
                          hint="quantize it first (QDQ format), or build without integer=True for float code")


def _lower_to_integer(mod: Any, report: dict[str, Any]) -> Any:
    """Run the QDQ → integer rewrite; record what it did; refuse when nothing became integer."""
    from .tvm_integer import lower_qdq_to_integer

    tick = time.perf_counter()
    mod, integer = lower_qdq_to_integer(mod)
    report["integer_seconds"] = time.perf_counter() - tick
    report["integer"] = integer.to_dict()
    report["relax_pipeline"] = "QDQToInteger + default"
    if integer.integer_count == 0:
        reasons = sorted({s.reason for s in integer.sites if s.reason})
        raise DeployError(f"none of the {len(integer.sites)} conv2d/matmul ops of this QDQ model could be lowered "
                          f"to integers ({'; '.join(reasons) or 'the model has no conv2d/matmul'})",
                          hint="build without integer=True for float code")
    return mod


def _apply_tuning(mod: Any, prof: CpuProfile, target: Any, ndk: bool, tuning_db: str | Path | None,
                  report: dict[str, Any]) -> Any:
    """The module with matching tuning records applied (legalized and fused), or unchanged with a warning."""
    from .tvm_records import apply_records, warn_untuned

    tick = time.perf_counter()
    tuned, match = apply_records(mod, prof, target, android=ndk, db=tuning_db)
    report["tuning"] = match.to_dict()
    report["tuning_seconds"] = time.perf_counter() - tick
    if tuned is None:
        warn_untuned(match)
        return mod
    return tuned


def build_tvm(onnx_path: str | Path, out_path: str | Path, profile: str, ndk: bool = False,
              integer: bool = False, tuning_db: str | Path | None = None) -> Artifact:
    """Compile an ONNX file for a CPU profile and write a shared library; return the ``Artifact`` with stage times.

    Checks (profile, linker, op support) run before the slow steps, so a bad setup fails in milliseconds.
    With ``integer=True`` the ONNX must be a QDQ model: its conv2d/matmul run as integer code
    (``tvm_integer``), and ``report["integer"]`` lists each one, naming those left in float and why.
    MetaSchedule records for the profile (``tvm_records``; ``tuning_db`` to name one folder) are applied when
    any kernel matches; ``report["tuning"]`` says what matched, and an untuned build warns (``UntunedWarning``).
    """
    start = time.perf_counter()
    prof = get_profile(profile)
    fcompile = _check_toolchain(prof, ndk)
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise DeployError(f"ONNX file {onnx_path} not found", hint="export it first with `mvd export`")
    model = onnx.load(str(onnx_path))
    if integer:
        _check_qdq(model, onnx_path)
    report: dict[str, Any] = {"onnx": str(onnx_path), "relax_pipeline": "default", "ndk": ndk}
    report.update(_scan(model))

    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    target = prof.tvm_target(android=ndk)
    report["target"] = str(target)
    tick = time.perf_counter()
    mod = from_onnx(model, keep_params_in_input=False)  # weights as constants: one static, self-contained library
    report["import_seconds"] = time.perf_counter() - tick
    if integer:
        mod = _lower_to_integer(mod, report)
    mod = _apply_tuning(mod, prof, target, ndk, tuning_db, report)

    tick = time.perf_counter()
    try:
        executable = tvm.compile(mod, target=target, relax_pipeline="default")
    except Exception as err:  # TVM's message ends with the cause after its C++ trace; keep that line, chain the rest
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise DeployError(f"TVM compilation failed: {lines[-1]}") from err
    report["compile_seconds"] = time.perf_counter() - tick

    tick = time.perf_counter()
    with _tmp_library(out_path) as tmp:
        try:
            if fcompile is None:
                executable.export_library(str(tmp))
            else:
                executable.export_library(str(tmp), fcompile=fcompile)
        except Exception as err:
            raise DeployError(f"linking the TVM library failed: {err}") from err
    report["link_seconds"] = time.perf_counter() - tick
    report["elf_machine"] = elf_machine(out_path)
    report["qemu_cpu"] = prof.qemu_cpu
    return Artifact(target="tvm", arch="host" if prof.is_host else "aarch64", profile=prof.name, path=str(out_path),
                    build_seconds=time.perf_counter() - start, size_bytes=out_path.stat().st_size, report=report)


def load_tvm_host(lib_path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load a host-built library once and return ``f(x) -> first output``; for repeated runs (timing)."""
    import tvm
    from tvm import relax

    lib = tvm.runtime.load_module(str(lib_path))
    vm = relax.VirtualMachine(lib, tvm.cpu())
    main = vm["main"]

    def run(x: np.ndarray) -> np.ndarray:
        out = main(tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32)))
        if not hasattr(out, "numpy"):  # a tuple of outputs
            out = out[0]
        return out.numpy()

    return run


def run_tvm_host(lib_path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run a host-built library with the Relax VM from Python and return its first output (tests, verification)."""
    lib_path = Path(lib_path)
    if elf_machine(lib_path) not in (None, _host_machine()):
        raise DeployError(f"{lib_path} is not built for this machine", hint="build with profile 'host' to run here")
    return load_tvm_host(lib_path)(x)


def _host_machine() -> int | None:
    """ELF machine of the running Python, so an aarch64 library is refused with a clear message, not a dlopen error."""
    import sys

    return elf_machine(sys.executable) if Path(sys.executable).is_file() else None
