"""Build libmvdseg, its JNI bridge and the C driver for one runtime and arch, cached like the C++ runners.

A build is a folder that an app (or a device) takes as is::

    libmvdseg.so        the C API (native/mvdseg.h), linked with -rpath '$ORIGIN'
    libmvdseg_jni.so    the JNI bridge of org.mobilevitdeploy.seg.MvdSegmenter (links libmvdseg.so)
    mvdseg_driver       a C program over the C API (qemu and device checks)
    lib*.so             the runtime libraries, as the runner ships them

The compiler, SDK roots, aarch64 wheels and link flags are the runners' (``targets/runner_build.py``); the
library adds ``-ffp-contract=off`` (its arithmetic must match PyTorch's bit for bit, see native/pipeline.h) and
``-fvisibility=hidden`` (only the C API and JNI entry points are exported). Builds are cached under
``$MVD_CACHE/app_backend`` keyed by every source, flag, compiler and runtime version.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets import runner_build as rb

NATIVE = Path(__file__).parent / "native"
JAVA = Path(__file__).parent / "java"
RUNTIMES = rb.RUNTIMES
ARCHES = rb.ARCHES  # host, aarch64 (glibc), android-arm64 (needs ANDROID_NDK_HOME + MVD_ANDROID_RUNTIME_LIBS)
LIBRARY = "libmvdseg.so"
JNI_LIBRARY = "libmvdseg_jni.so"
DRIVER = "mvdseg_driver"
_SOURCES = ("mvdseg.cpp", "bundle.cpp", "json.cpp", "sha256.cpp", "pipeline.cpp")
_ENGINE = {"executorch": "engine_executorch.cpp", "tvm": "engine_tvm.cpp"}
_FLAGS = ("-O3", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off")
_SCHEMA = "1"  # bump to invalidate every cached build


class AppBackendError(DeployError):
    """The app backend cannot be built (missing compiler, JDK, NDK) or did not compile."""


@dataclass(frozen=True)
class AppLibrary:
    """A built folder: the library, its JNI bridge, the C driver and the runtime libraries beside them."""

    runtime: str
    arch: str
    folder: Path
    runtime_libs: tuple[Path, ...]

    @property
    def library(self) -> Path:
        return self.folder / LIBRARY

    @property
    def jni_library(self) -> Path:
        return self.folder / JNI_LIBRARY

    @property
    def driver(self) -> Path:
        return self.folder / DRIVER

    @property
    def shared_libraries(self) -> tuple[Path, ...]:
        """What goes into an app's jniLibs/<abi>/ folder: every .so of the build."""
        return (self.library, self.jni_library, *self.runtime_libs)


def _jni_includes(arch: str) -> list[str]:
    """jni.h: the NDK sysroot has it for Android; glibc builds take the JDK's (jni_md.h is the same on arm64)."""
    if arch == "android-arm64":
        return []
    javac = shutil.which("javac")
    if javac is None:
        raise AppBackendError("no JDK found (javac is not on PATH): the JNI bridge needs jni.h",
                              hint="apt-get install openjdk-17-jdk-headless")
    home = Path(os.environ.get("JAVA_HOME") or Path(javac).resolve().parents[1])
    include = home / "include"
    if not (include / "jni.h").exists():
        raise AppBackendError(f"the JDK at {home} has no include/jni.h", hint="set JAVA_HOME to a full JDK")
    return [f"-I{include}", f"-I{include / 'linux'}"]


def _arch_flags(arch: str) -> list[str]:
    """Explicit fma() compiles to one instruction on arm64 always, on x86 hosts only with -mfma."""
    if arch == "host" and platform.machine() in ("x86_64", "AMD64"):
        try:
            flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
        except OSError:
            flags = ""
        if "fma" in flags.split():
            return ["-mfma"]
    return []


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AppBackendError(f"{what} did not compile:\n{rb._first_errors(proc.stderr)}",
                              hint="command: " + " ".join(cmd))


def build_app_library(runtime: str, arch: str = "host") -> AppLibrary:
    """Compile (or fetch from the cache) libmvdseg + JNI bridge + C driver for ``runtime`` on ``arch``."""
    if runtime not in RUNTIMES:
        raise AppBackendError(f"unknown runtime '{runtime}'", hint=f"choose one of {', '.join(RUNTIMES)}")
    if arch not in ARCHES:
        raise AppBackendError(f"unknown arch '{arch}'", hint=f"choose one of {', '.join(ARCHES)}")
    cxx = rb._toolchain(arch)
    versions = rb._versions(runtime)
    extra_libs: list[Path] = []
    if arch == "host":
        sdk = rb._sdk(rb._host_roots(runtime), runtime)
    elif arch == "aarch64":
        sdk = rb._sdk(rb._aarch64_roots(runtime), runtime)
    else:
        sdk, extra_libs = rb._android_sdk(runtime)
    compile_args = [*rb._compile_args(runtime, arch, sdk, versions), *_FLAGS, *_arch_flags(arch),
                    f'-DMVD_APP_ARCH="{arch}"', f"-I{NATIVE}", f"-I{rb.SOURCES}"]
    link_args = rb._link_args(runtime, sdk)
    jni_includes = _jni_includes(arch)

    key = hashlib.sha256()
    for part in (_SCHEMA, runtime, arch, rb._compiler_id(cxx), json.dumps(versions, sort_keys=True),
                 *(a for a in compile_args + link_args if not a.startswith(("-I", "-L", "-Wl,-rpath-link")))):
        key.update(part.encode() + b"\0")
    for src in sorted([*NATIVE.glob("*"), *rb.SOURCES.glob("*.h")]):
        key.update(src.name.encode() + b"\0" + src.read_bytes())
    out = rb.cache_dir() / "app_backend" / f"{runtime}-{arch}-{key.hexdigest()[:16]}"
    lib_names = [*rb._LIBS[runtime], *(p.name for p in extra_libs)]
    result = AppLibrary(runtime, arch, out, tuple(out / n for n in lib_names))
    if (out / ".complete").exists():
        return result

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        sources = [str(NATIVE / s) for s in (*_SOURCES, _ENGINE[runtime])]
        _run([*cxx, *compile_args, "-shared", f"-Wl,-soname,{LIBRARY}", *sources, "-o", str(tmp / LIBRARY),
              *link_args], f"libmvdseg ({runtime}, {arch})")
        own = [f"-L{tmp}", *(f"-Wl,-rpath-link,{d}" for d in (tmp, *sdk.libdirs)), "-lmvdseg", "-Wl,-rpath,$ORIGIN"]
        _run([*cxx, *compile_args, *jni_includes, "-shared", f"-Wl,-soname,{JNI_LIBRARY}",
              str(NATIVE / "mvdseg_jni.cpp"), "-o", str(tmp / JNI_LIBRARY), *own], f"the JNI bridge ({arch})")
        _run([*cxx, "-x", "c", "-std=c11", "-O2", "-Wall", f"-I{NATIVE}", str(NATIVE / "mvdseg_driver.c"), "-x", "none",
              "-o", str(tmp / DRIVER), *own], f"the C driver ({arch})")
        for lib in [rb._find_lib(n, sdk) for n in rb._LIBS[runtime]] + extra_libs:
            shutil.copy2(lib, tmp / lib.name)
        (tmp / ".complete").write_text(json.dumps({"runtime": runtime, "arch": arch, "versions": versions}) + "\n")
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same build first
            if not (out / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
