"""Build, cache and invoke the C++ runners (``targets/runners/``) for ExecuTorch and TVM, on the host or for aarch64.

Why a runner in C++: latency on a phone has to be measured without Python, with the same runtime libraries
a deployment ships. Both runners share one contract::

    RUNNER --model PATH --input X.npy --output Y.npy --warmup N --iters N --threads N

and print exactly one JSON line (parsed by :func:`parse_runner_json`). A build is a folder holding the runner
and copies of the runtime shared libraries it needs (linked with ``-rpath '$ORIGIN'``), so pushing the folder
to a device is enough. Builds are cached under ``$MVD_CACHE`` (default ``~/.cache/mobilevit-deploy``), keyed
by the sources, flags, compiler, arch and runtime versions: a second call returns at once.

aarch64 builds cross-compile with ``aarch64-linux-gnu-g++`` against the libraries of the aarch64 wheels of the
installed (pinned) versions, fetched once with ``pip download`` into the cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.errors import DeployError

RUNTIMES = ("executorch", "tvm")
ARCHES = ("host", "aarch64", "android-arm64")
SOURCES = Path(__file__).parent / "runners"
CROSS_CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
QEMU_CPU = "cortex-a76"  # never qemu's default `max`: it exposes SME and XNNPACK int8 comes out wrong
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
_BUILD_SCHEMA = "1"  # bump to invalidate every cached build

# Runtime libraries per runtime, in link order. ExecuTorch backends and kernels register themselves from static
# initialisers, and libtvm_runtime registers relax.VMExecutable: all must stay in NEEDED (--no-as-needed).
_LIBS = {
    "executorch": (
        "libexecutorch_backend_xnnpack.so",
        "libexecutorch_kernels_optimized.so",
        "libexecutorch_kernels_quantized.so",
        "libexecutorch_threadpool.so",
        "libexecutorch.so",
    ),
    "tvm": ("libtvm_runtime.so", "libtvm_ffi.so"),
}
_DISTS = {"executorch": ("executorch",), "tvm": ("apache-tvm", "apache-tvm-ffi")}
_CXXFLAGS = ("-std=c++17", "-O2", "-Wall", "-Wno-deprecated-declarations")
_ET_DEFINES = ("C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED", "ET_USE_THREADPOOL")


@dataclass(frozen=True)
class RunnerBuild:
    """A built runner: ``binary`` plus the runtime ``libs`` that sit next to it (push all of them together)."""

    runtime: str
    arch: str
    binary: Path
    libs: tuple[Path, ...]
    link_line: tuple[str, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """Everything a device needs: the runner first, then its libraries."""
        return (self.binary, *self.libs)


@dataclass(frozen=True)
class RunnerResult:
    """The runner's JSON line, typed."""

    runtime: str
    runtime_version: str
    threads: int
    load_ms: float
    iter_us: tuple[float, ...]
    peak_rss_kb: int
    output_shape: tuple[int, ...]
    output_dtype: str

    @property
    def median_us(self) -> float:
        """Median iteration time: robust to the odd slow iteration on a shared machine."""
        s = sorted(self.iter_us)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


# ------------------------------------------------------------------------------------------------ paths


def cache_dir() -> Path:
    """Root of the build cache: ``$MVD_CACHE`` or ``~/.cache/mobilevit-deploy``."""
    return Path(os.environ.get("MVD_CACHE") or Path.home() / ".cache" / "mobilevit-deploy")


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DeployError(f"the Python package '{module}' is not installed", hint="run tools/bootstrap.sh")
    return Path(next(iter(spec.submodule_search_locations)))


def _versions(runtime: str) -> dict[str, str]:
    try:
        return {d: importlib.metadata.version(d) for d in _DISTS[runtime]}
    except importlib.metadata.PackageNotFoundError as e:
        raise DeployError(f"the Python package '{e.name}' is not installed", hint="run tools/bootstrap.sh") from e


@dataclass(frozen=True)
class _Sdk:
    """Where one runtime's headers and shared libraries are for one arch."""

    includes: tuple[Path, ...]
    libdirs: tuple[Path, ...]


def _sdk(root: dict[str, Path], runtime: str) -> _Sdk:
    if runtime == "executorch":
        et = root["executorch"]
        inc = et / "include"
        return _Sdk((inc, inc / "executorch/runtime/core/portable_type/c10"), (et / "lib",))
    tvm, ffi = root["tvm"], root["tvm_ffi"]
    return _Sdk((ffi / "include", tvm / "include"), (tvm / "lib", ffi / "lib"))


def _host_roots(runtime: str) -> dict[str, Path]:
    names = ("executorch",) if runtime == "executorch" else ("tvm", "tvm_ffi")
    return {n: _package_dir(n) for n in names}


# ------------------------------------------------------------------------------------------------ aarch64 wheels

_WHEEL_MEMBERS = {  # which parts of each aarch64 wheel a runner build needs (tvm's 250 MB compiler is skipped)
    "executorch": ("executorch/lib/", "executorch/include/"),
    "apache-tvm": ("tvm/lib/libtvm_runtime.so", "tvm/include/"),
    "apache-tvm-ffi": ("tvm_ffi/lib/libtvm_ffi.so", "tvm_ffi/include/"),
}
_AARCH64_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_24_aarch64", "manylinux_2_17_aarch64")


def _aarch64_roots(runtime: str) -> dict[str, Path]:
    """Unpacked aarch64 wheels of the installed versions, fetched once into the cache."""
    roots: dict[str, Path] = {}
    for dist, version in _versions(runtime).items():
        dest = cache_dir() / "wheels" / "aarch64" / f"{dist}-{version}"
        if not (dest / ".complete").exists():
            _fetch_wheel(dist, version, dest)
        for top in (dest / p.split("/")[0] for p in _WHEEL_MEMBERS[dist]):
            roots[top.name] = top
    return roots


def _fetch_wheel(dist: str, version: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mvd-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.11", *(a for p in _AARCH64_PLATFORMS for a in ("--platform", p)), "-d", tmp, f"{dist}=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise DeployError(f"could not download the aarch64 wheel of {dist}=={version}:\n{tail}",
                              hint="the package index must offer a manylinux aarch64 wheel of that exact version")
        shutil.rmtree(dest, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in zf.namelist():
                if name.startswith(_WHEEL_MEMBERS[dist]):
                    zf.extract(name, dest)
    (dest / ".complete").write_text(wheels[0].name + "\n")


# ------------------------------------------------------------------------------------------------ build


def _toolchain(arch: str) -> list[str]:
    if arch == "host":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None:
            raise DeployError(f"no C++ compiler '{cxx}' on PATH", hint="apt-get install g++")
        return [cxx]
    if arch == "aarch64":
        if shutil.which(CROSS_CXX) is None:
            raise DeployError(f"the cross compiler {CROSS_CXX} is not installed",
                              hint="apt-get install g++-aarch64-linux-gnu")
        return [CROSS_CXX]
    return [str(_android_cxx())]


def _android_cxx() -> Path:
    ndk = os.environ.get("ANDROID_NDK_HOME")
    if not ndk:
        raise DeployError("arch android-arm64 needs the Android NDK", hint="set ANDROID_NDK_HOME")
    api = os.environ.get("MVD_ANDROID_API", "28")
    cxx = Path(ndk) / "toolchains/llvm/prebuilt/linux-x86_64/bin" / f"aarch64-linux-android{api}-clang++"
    if not cxx.exists():
        raise DeployError(f"no NDK compiler at {cxx}", hint="check ANDROID_NDK_HOME and MVD_ANDROID_API")
    return cxx


def _android_sdk(runtime: str) -> tuple[_Sdk, list[Path]]:
    """Android build inputs: headers from the host wheels, libraries from ``$MVD_ANDROID_RUNTIME_LIBS``.

    Untestable here: the wheels' libraries are glibc/libstdc++ builds, so Android needs ExecuTorch / TVM built
    from source with the NDK; the user points MVD_ANDROID_RUNTIME_LIBS at that folder. libc++_shared.so is
    taken from the same folder or the NDK sysroot and shipped with the runner.
    """
    folder = os.environ.get("MVD_ANDROID_RUNTIME_LIBS")
    if not folder or not Path(folder).is_dir():
        raise DeployError("arch android-arm64 needs NDK-built runtime libraries",
                          hint="set MVD_ANDROID_RUNTIME_LIBS to the folder holding them")
    host = _sdk(_host_roots(runtime), runtime)
    extra = [Path(folder) / "libc++_shared.so"]
    ndk_cxx = Path(os.environ["ANDROID_NDK_HOME"]) / "toolchains/llvm/prebuilt/linux-x86_64/sysroot/usr/lib"
    if not extra[0].exists():
        extra = [ndk_cxx / "aarch64-linux-android" / "libc++_shared.so"]
    return _Sdk(host.includes, (Path(folder),)), extra


def _compile_args(runtime: str, arch: str, sdk: _Sdk, versions: dict[str, str]) -> list[str]:
    args = list(_CXXFLAGS)
    if runtime == "executorch":
        args += [f"-D{d}" for d in _ET_DEFINES]
        args.append(f'-DMVD_EXECUTORCH_VERSION="{versions.get("executorch", "unknown")}"')
    else:
        v = f'{versions.get("apache-tvm", "unknown")} (tvm-ffi {versions.get("apache-tvm-ffi", "unknown")})'
        args.append(f'-DMVD_TVM_VERSION="{v}"')
    if arch == "android-arm64":
        args.append("-stdlib=libc++")
    return args + [f"-I{p}" for p in sdk.includes]


def _link_args(runtime: str, sdk: _Sdk) -> list[str]:
    args = [f"-L{p}" for p in sdk.libdirs] + [f"-Wl,-rpath-link,{p}" for p in sdk.libdirs]
    args += ["-Wl,--push-state,--no-as-needed", *(f"-l{n[3:-3]}" for n in _LIBS[runtime]), "-Wl,--pop-state"]
    return [*args, "-Wl,-rpath,$ORIGIN"]


def _find_lib(name: str, sdk: _Sdk) -> Path:
    for d in sdk.libdirs:
        if (d / name).exists():
            return d / name
    raise DeployError(f"runtime library {name} not found in {', '.join(map(str, sdk.libdirs))}",
                      hint="reinstall the pinned packages (tools/bootstrap.sh)")


def _compiler_id(cxx: list[str]) -> str:
    proc = subprocess.run([*cxx, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0] if proc.stdout else cxx[0]


def build_runner(runtime: str, arch: str = "host") -> RunnerBuild:
    """Compile (or fetch from the cache) the ``runtime`` runner for ``arch`` ("host", "aarch64", "android-arm64")."""
    if runtime not in RUNTIMES:
        raise DeployError(f"unknown runtime '{runtime}'", hint=f"choose one of {', '.join(RUNTIMES)}")
    if arch not in ARCHES:
        raise DeployError(f"unknown arch '{arch}'", hint=f"choose one of {', '.join(ARCHES)}")
    cxx = _toolchain(arch)  # first, so a missing cross compiler is reported before any download
    versions = _versions(runtime)
    extra_libs: list[Path] = []
    if arch == "host":
        sdk = _sdk(_host_roots(runtime), runtime)
    elif arch == "aarch64":
        sdk = _sdk(_aarch64_roots(runtime), runtime)
    else:
        sdk, extra_libs = _android_sdk(runtime)
    source = SOURCES / f"{runtime}_runner.cpp"
    compile_args = _compile_args(runtime, arch, sdk, versions)
    link_args = _link_args(runtime, sdk)

    key = hashlib.sha256()
    for part in (_BUILD_SCHEMA, runtime, arch, _compiler_id(cxx), json.dumps(versions, sort_keys=True),
                 *(a for a in compile_args + link_args if not a.startswith(("-I", "-L", "-Wl,-rpath-link")))):
        key.update(part.encode() + b"\0")
    for src in sorted(SOURCES.glob("*")):
        key.update(src.name.encode() + b"\0" + src.read_bytes())
    out = cache_dir() / "runners" / f"{runtime}-{arch}-{key.hexdigest()[:16]}"
    binary = out / f"{runtime}_runner"
    lib_names = [*_LIBS[runtime], *(p.name for p in extra_libs)]
    link_line = (*cxx, *compile_args, str(source), "-o", str(binary), *link_args)
    if (out / ".complete").exists():
        return RunnerBuild(runtime, arch, binary, tuple(out / n for n in lib_names), link_line)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        cmd = [*cxx, *compile_args, str(source), "-o", str(tmp / binary.name), *link_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DeployError(f"the {runtime} runner did not compile for {arch}:\n{_first_errors(proc.stderr)}",
                              hint="command: " + " ".join(cmd))
        for lib in [_find_lib(n, sdk) for n in _LIBS[runtime]] + extra_libs:
            shutil.copy2(lib, tmp / lib.name)
        (tmp / ".complete").write_text(" ".join(link_line) + "\n")
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same build first
            if not (out / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RunnerBuild(runtime, arch, binary, tuple(out / n for n in lib_names), link_line)


def _first_errors(stderr: str, limit: int = 8) -> str:
    lines = stderr.strip().splitlines()
    errors = [ln for ln in lines if "error" in ln.lower()]
    return "\n".join((errors or lines)[:limit])


# ------------------------------------------------------------------------------------------------ run and parse


def runner_command(build: RunnerBuild, model: Path | str, input_npy: Path | str, output_npy: Path | str, *,
                   warmup: int = 1, iters: int = 10, threads: int = 1, qemu_cpu: str = QEMU_CPU) -> list[str]:
    """argv that runs ``build`` on this machine: natively for host, under qemu-aarch64 for aarch64.

    The libraries are found through the runner's ``$ORIGIN`` rpath; for qemu, LD_LIBRARY_PATH is also set in
    the guest environment (``-E``) so the emulated loader finds them whatever the working directory.
    """
    args = [str(build.binary), "--model", str(model), "--input", str(input_npy), "--output", str(output_npy),
            "--warmup", str(warmup), "--iters", str(iters), "--threads", str(threads)]
    if build.arch == "host":
        return args
    if build.arch == "aarch64":
        if shutil.which(QEMU) is None:
            raise DeployError(f"{QEMU} is not installed", hint="apt-get install qemu-user")
        return [QEMU, "-cpu", qemu_cpu, "-L", AARCH64_SYSROOT, "-E",
                f"LD_LIBRARY_PATH={build.binary.parent}", *args]
    raise DeployError(f"a runner built for {build.arch} cannot run on this machine",
                      hint="push build.files to the device and run it there (adb)")


def run_runner(build: RunnerBuild, model: Path | str, input_npy: Path | str, output_npy: Path | str, *,
               warmup: int = 1, iters: int = 10, threads: int = 1, timeout: float = 600,
               qemu_cpu: str = QEMU_CPU) -> RunnerResult:
    """Run the runner and parse its JSON line; a failure raises DeployError carrying the runner's stderr."""
    cmd = runner_command(build, model, input_npy, output_npy, warmup=warmup, iters=iters, threads=threads,
                         qemu_cpu=qemu_cpu)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise DeployError(f"the {build.runtime} runner ({build.arch}) failed with exit code {proc.returncode}:\n{tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise DeployError(f"the runner printed {len(lines)} lines on stdout, expected exactly one JSON line")
    return parse_runner_json(lines[0])


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "runtime": str, "runtime_version": str, "threads": int, "load_ms": (int, float), "iter_us": list,
    "peak_rss_kb": int, "output_shape": list, "output_dtype": str,
}


def parse_runner_json(line: str) -> RunnerResult:
    """Parse and check one runner JSON line; anything malformed or missing raises DeployError naming it."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise DeployError(f"runner output is not valid JSON ({e.msg} at column {e.colno}): {line[:200]!r}") from e
    if not isinstance(data, dict):
        raise DeployError(f"runner output is not a JSON object: {line[:200]!r}")
    missing = [k for k in _FIELDS if k not in data]
    if missing:
        raise DeployError(f"runner output lacks the field(s) {', '.join(missing)}")
    for key, kind in _FIELDS.items():
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise DeployError(f"runner output field '{key}' has the wrong type ({type(data[key]).__name__})")
    if data["runtime"] not in RUNTIMES:
        raise DeployError(f"runner output names an unknown runtime '{data['runtime']}'")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data["iter_us"]):
        raise DeployError("runner output field 'iter_us' must be a list of numbers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in data["output_shape"]):
        raise DeployError("runner output field 'output_shape' must be a list of non-negative integers")
    return RunnerResult(
        runtime=data["runtime"], runtime_version=data["runtime_version"], threads=data["threads"],
        load_ms=float(data["load_ms"]), iter_us=tuple(float(v) for v in data["iter_us"]),
        peak_rss_kb=data["peak_rss_kb"], output_shape=tuple(data["output_shape"]), output_dtype=data["output_dtype"],
    )
