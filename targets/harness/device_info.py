"""What was measured on: model, SoC, ABI, per-core max frequencies, governors, temperatures, taskset.

Read with plain shell commands over the sysfs files, the same way on a phone and on the emulated one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.devices.base import Device

_SYSFS = ("/sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq /sys/devices/system/cpu/cpu*/cpufreq/scaling_max_freq "
          "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor /sys/class/thermal/thermal_zone*/temp")
_CPU_LINE = re.compile(r"/sys/devices/system/cpu/cpu(\d+)/cpufreq/(\w+):(.*)$")
_TEMP_LINE = re.compile(r"/sys/class/thermal/thermal_zone(\d+)/temp:(-?\d+)\s*$")


@dataclass
class DeviceInfo:
    serial: str
    model: str
    soc: str
    abi: str
    max_freq_khz: dict[int, int] = field(default_factory=dict)
    scaling_max_khz: dict[int, int] = field(default_factory=dict)
    governors: dict[int, str] = field(default_factory=dict)
    has_taskset: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def read_sysfs(device: Device) -> tuple[dict[str, dict[int, str]], dict[int, float]]:
    """cpufreq files per core and thermal zone temperatures (°C); missing files simply do not appear."""
    out = device.shell(f"grep -H . {_SYSFS} 2>/dev/null", timeout=30).stdout
    cpu: dict[str, dict[int, str]] = {}
    temps: dict[int, float] = {}
    for line in out.splitlines():
        if m := _CPU_LINE.search(line):
            cpu.setdefault(m[2], {})[int(m[1])] = m[3].strip()
        elif m := _TEMP_LINE.search(line):
            value = int(m[2])
            temps[int(m[1])] = value / 1000 if abs(value) > 200 else float(value)  # millidegrees on most phones
    return cpu, temps


def read_temps(device: Device) -> dict[int, float]:
    return read_sysfs(device)[1]


def collect(device: Device) -> DeviceInfo:
    props = device.props()
    cpu, _ = read_sysfs(device)
    ints = {k: {c: int(v) for c, v in d.items() if v.isdigit()} for k, d in cpu.items()}
    has_taskset = device.shell("command -v taskset", timeout=30).stdout.strip() != ""
    return DeviceInfo(
        serial=device.serial, model=props.get("ro.product.model", "?"),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "?"),
        abi=props.get("ro.product.cpu.abi", "?"), max_freq_khz=ints.get("cpuinfo_max_freq", {}),
        scaling_max_khz=ints.get("scaling_max_freq", {}), governors=cpu.get("scaling_governor", {}),
        has_taskset=has_taskset)


def resolve_pin(pin: str, info: DeviceInfo) -> str:
    """``big`` / ``little`` → the cores with the highest / lowest max frequency; a CPU list is checked and kept."""
    if pin in ("big", "little"):
        if not info.max_freq_khz:
            raise DeployError(f"--pin {pin}: the device does not expose cpufreq, so big and little are unknown",
                              hint="pass a CPU list, e.g. --pin 4-7")
        target = (max if pin == "big" else min)(info.max_freq_khz.values())
        return ",".join(str(c) for c in sorted(info.max_freq_khz) if info.max_freq_khz[c] == target)
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", pin):
        raise DeployError(f"--pin {pin!r} is not a CPU list", hint="use e.g. 4-7, 0,2,4, big or little")
    return pin
