"""Named CPU profiles: one name → a TVM target dict, the qemu ``-cpu`` model that can run its code, and a triple.

Why names instead of raw target strings: TVM 0.27 rejects option strings (``"llvm -mtriple=..."``), feature
spellings differ between LLVM, qemu and vendor docs, and a phone is usually known by its core (A55 little,
A76 big, X3 prime). A profile pins all three views of one core so builds and emulated runs stay consistent.

qemu 7.2 (Debian bookworm) knows cortex-a35/a53/a57/a72/a76, neoverse-n1, a64fx and max: cores it lacks are
emulated by a model that implements a superset of their features. Never ``max`` as is: it exposes SME and
XNNPACK then picks SME kernels whose int8 results are wrong under qemu (``max,sme=off`` is fine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mobilevit_deploy.errors import DeployError

LINUX_TRIPLE = "aarch64-linux-gnu"
ANDROID_TRIPLE = "aarch64-linux-android"


@dataclass(frozen=True)
class CpuProfile:
    """One CPU as TVM, qemu and the linker see it.

    ``features`` are the TVM target feature flags (``feature.has_<name>``) the profile promises; they are checked
    by :func:`verify_profile` because LLVM only warns about a misspelled ``mattr`` and would quietly build
    code without, say, dot-product instructions.
    """

    name: str
    arch: str  # "host" or "aarch64"
    description: str
    mcpu: str | None = None
    mattr: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    qemu_cpu: str | None = None  # None for host

    @property
    def is_host(self) -> bool:
        return self.arch == "host"

    def triple(self, android: bool = False) -> str | None:
        """LLVM triple: glibc Linux by default, Android (bionic) with ``android=True``; None (LLVM default) for host."""
        if self.is_host:
            if android:
                raise DeployError("the host profile has no Android variant", hint="use an aarch64 profile")
            return None
        return ANDROID_TRIPLE if android else LINUX_TRIPLE

    def target_dict(self, android: bool = False, num_cores: int | None = None) -> dict[str, Any]:
        """The dict form TVM 0.27 accepts; ``num_cores`` is only needed by MetaSchedule tuning."""
        d: dict[str, Any] = {"kind": "llvm"}
        triple = self.triple(android)
        if triple:
            d["mtriple"] = triple
        if self.mcpu:
            d["mcpu"] = self.mcpu
        if self.mattr:
            d["mattr"] = list(self.mattr)
        if num_cores:
            d["num-cores"] = int(num_cores)
        return d

    def tvm_target(self, android: bool = False, num_cores: int | None = None) -> Any:
        """A ``tvm.target.Target`` (imported lazily: profiles are also used by code paths without TVM)."""
        import tvm

        return tvm.target.Target(self.target_dict(android, num_cores))


def _host_cpu() -> str:
    """LLVM's name for this machine's CPU (e.g. znver4), or ``generic`` if LLVM cannot tell."""
    try:
        from tvm.target import codegen

        cpu = str(codegen.llvm_get_system_cpu())
    except Exception:  # no TVM or no LLVM in this build: a generic x86-64 target still works
        return "generic"
    return cpu if cpu and cpu != "generic" else "generic"


_AARCH64_PROFILES = (
    CpuProfile("aarch64", "aarch64", "generic Armv8-A with NEON: runs on any 64-bit ARM phone",
               mcpu="generic", mattr=("+neon",), features=("asimd",), qemu_cpu="cortex-a53"),
    # qemu has no A55: the A76 model implements the same v8.2-A + dotprod + fp16 feature set.
    CpuProfile("cortex-a55", "aarch64", "Cortex-A55 (little core, Armv8.2-A, dotprod, fp16)",
               mcpu="cortex-a55", mattr=("+neon", "+v8.2a", "+dotprod", "+fullfp16"),
               features=("asimd", "dotprod", "fp16_simd"), qemu_cpu="cortex-a76"),
    CpuProfile("cortex-a76", "aarch64", "Cortex-A76 (big core, Armv8.2-A, dotprod, fp16)",
               mcpu="cortex-a76", mattr=("+neon", "+v8.2a", "+dotprod", "+fullfp16"),
               features=("asimd", "dotprod", "fp16_simd"), qemu_cpu="cortex-a76"),
    # qemu has no X3 (Armv9-A, SVE2, i8mm, bf16): `max` without SME covers it.
    CpuProfile("cortex-x3", "aarch64", "Cortex-X3 (prime core, Armv9-A, dotprod, i8mm, SVE2)",
               mcpu="cortex-x3", mattr=("+neon", "+v9a", "+dotprod", "+i8mm", "+fullfp16"),
               features=("asimd", "dotprod", "matmul_i8", "fp16_simd", "sve"), qemu_cpu="max,sme=off"),
)

PROFILE_NAMES: tuple[str, ...] = ("host", *(p.name for p in _AARCH64_PROFILES))


def get_profile(name: str) -> CpuProfile:
    """The profile called ``name``; an unknown name raises ``DeployError`` listing the valid ones."""
    if name == "host":  # built on demand: the detected CPU belongs to the machine that runs the build
        return CpuProfile("host", "host", f"this machine ({_host_cpu()}), for host runs and tests", mcpu=_host_cpu())
    for p in _AARCH64_PROFILES:
        if p.name == name:
            return p
    raise DeployError(f"unknown CPU profile '{name}'", hint=f"valid profiles: {', '.join(PROFILE_NAMES)}")


def list_profiles() -> list[CpuProfile]:
    """All profiles, host first."""
    return [get_profile(n) for n in PROFILE_NAMES]


def verify_profile(name: str, android: bool = False) -> Any:
    """Build the TVM target of ``name`` and check it has the promised features; return the target.

    Raises ``DeployError`` if TVM rejects the dict or a feature is missing (e.g. a typo in ``mattr``).
    """
    profile = get_profile(name)
    try:
        target = profile.tvm_target(android)
    except Exception as err:
        raise DeployError(f"TVM rejected the target of profile '{name}': {err}") from err
    missing = [f for f in profile.features if not bool(target.attrs.get(f"feature.has_{f}", False))]
    if missing:
        raise DeployError(f"profile '{name}' target lacks features {missing}", hint=f"target: {target}")
    return target
