"""What a fresh emulated phone's file tree holds: folders, build properties, a small tool set, and the sysfs
files (cpufreq, thermal) the harness reads exactly as it would on a real phone."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

# Host tools offered on the device PATH (as wrapper scripts, so no symlink leads out of the sandbox).
# No shell and no `env`: a nested shell would bypass the device-path rewriting.
TOOLS = ("cat", "ls", "mkdir", "rm", "rmdir", "chmod", "mv", "cp", "touch", "sha256sum", "md5sum", "stat", "head",
         "tail", "wc", "grep", "sleep", "uname", "id", "df", "du", "sync", "date", "true", "false", "kill", "nproc",
         "cmp", "dd", "ps", "od", "tr", "sort", "cut", "basename", "dirname", "readlink", "ln", "xargs", "taskset")


@dataclass(frozen=True)
class PhoneSpec:
    """The emulated phone's identity and CPU topology (4 little, 3 big, 1 prime: a typical 2020s SoC)."""

    model: str = "mvd_emulated_phone"
    cpu: str = "cortex-a76"
    board: str = "mvdemu"
    soc: str = "MVD-QEMU-A76"
    max_freqs_khz: tuple[int, ...] = (1800000,) * 4 + (2400000,) * 3 + (2840000,)
    temps_mc: tuple[int, ...] = (36000, 37000, 35500)
    serialno: str = "mvd-emulated"

    def props(self) -> dict[str, str]:
        return {
            "ro.product.model": self.model,
            "ro.product.name": self.model,
            "ro.product.device": self.model,
            "ro.product.manufacturer": "mobilevit-deploy",
            "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": "arm64-v8a",
            "ro.board.platform": self.board,
            "ro.soc.manufacturer": "QEMU",
            "ro.soc.model": self.soc,
            "ro.hardware": self.board,
            "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
            "ro.serialno": self.serialno,
            "ro.mvd.qemu_cpu": self.cpu,
        }


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def prepare_root(root: Path, spec: PhoneSpec) -> None:
    """Create (or refresh) the device tree under ``root``; files already pushed are left alone."""
    for d in ("data/local/tmp", "sdcard", "system/bin", "vendor"):
        (root / d).mkdir(parents=True, exist_ok=True)
    props = spec.props()
    _write(root / "system/build.prop", "".join(f"{k}={v}\n" for k, v in props.items()))
    bindir = root / "system/bin"
    for tool in TOOLS:
        real = shutil.which(tool, path="/usr/bin:/bin")
        if real:
            _write(bindir / tool, f'#!/bin/sh\nexec {real} "$@"\n', 0o755)
    prop_file = root / "system/build.prop"
    _write(bindir / "getprop", _GETPROP.replace("@PROPS@", str(prop_file)), 0o755)
    cpu = root / "sys/devices/system/cpu"
    for i, freq in enumerate(spec.max_freqs_khz):
        base = cpu / f"cpu{i}/cpufreq"
        _write(base / "cpuinfo_max_freq", f"{freq}\n")
        _write(base / "scaling_max_freq", f"{freq}\n")
        _write(base / "scaling_cur_freq", f"{freq}\n")
        _write(base / "scaling_governor", "schedutil\n")
    _write(cpu / "possible", f"0-{len(spec.max_freqs_khz) - 1}\n")
    _write(cpu / "online", f"0-{len(spec.max_freqs_khz) - 1}\n")
    for i, temp in enumerate(spec.temps_mc):
        zone = root / f"sys/class/thermal/thermal_zone{i}"
        _write(zone / "type", ("cpu-big", "cpu-little", "battery")[i % 3] + "\n")
        _write(zone / "temp", f"{temp}\n")


_GETPROP = """#!/bin/sh
# getprop emulation: no argument lists every property, one argument prints its value (empty if unknown).
f='@PROPS@'
if [ $# -eq 0 ]; then
  while IFS='=' read -r k v; do printf '[%s]: [%s]\\n' "$k" "$v"; done < "$f"
  exit 0
fi
while IFS='=' read -r k v; do
  if [ "$k" = "$1" ]; then printf '%s\\n' "$v"; exit 0; fi
done < "$f"
echo
"""
