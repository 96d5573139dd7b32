"""A phone over adb, through the real ``adb`` binary.

Why the binary and not adbutils: adbutils is not installed here, and the adb binary is what users already run,
talks to their running server, honours ``ANDROID_ADB_SERVER_PORT`` and handles auth and USB; shelling out also
gives a per-command timeout we can enforce by killing the client (the server then closes the stream, and the
device kills the command). Every argument put into a device shell command is shlex-quoted (``shell_join``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .base import (
    Device,
    DeviceError,
    DeviceFullError,
    DeviceGoneError,
    DeviceTimeoutError,
    ShellResult,
    parse_getprop,
    shell_join,
)

_GONE = re.compile(r"device .* not found|device offline|no devices|closed|protocol fault|connection reset|"
                   r"failed to connect|cannot connect|unauthorized|broken pipe|connection refused", re.I)


_END = "__MVD_END__:"


def adb_binary() -> str:
    path = shutil.which("adb")
    if path is None:
        raise DeviceError("adb is not installed", hint="apt-get install adb (or put platform-tools on PATH)")
    return path


def _env(server_port: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if server_port is not None:
        env["ANDROID_ADB_SERVER_PORT"] = str(server_port)
    return env


@dataclass(frozen=True)
class DeviceListing:
    serial: str
    state: str
    model: str
    abi: str = ""


def list_adb_devices(server_port: int | None = None, timeout: float = 20) -> list[DeviceListing]:
    """Parse ``adb devices -l``: serial, state and model (from the banner) of every device the server knows."""
    try:
        proc = subprocess.run([adb_binary(), "devices", "-l"], capture_output=True, text=True, timeout=timeout,
                              env=_env(server_port), check=False)
    except subprocess.TimeoutExpired:
        raise DeviceError("`adb devices` did not answer", hint="adb kill-server, then try again") from None
    out = []
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 2 or line.startswith("*"):
            continue
        info = dict(f.split(":", 1) for f in fields[2:] if ":" in f)
        out.append(DeviceListing(fields[0], fields[1], info.get("model", "")))
    return out


class AdbDevice(Device):
    def __init__(self, serial: str, server_port: int | None = None) -> None:
        self.serial = serial
        self.server_port = server_port
        self._adb = adb_binary()
        self._props: dict[str, str] | None = None

    def _run(self, args: list[str], timeout: float | None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        cmd = [self._adb, "-s", self.serial, *args]
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, env=_env(self.server_port),
                                  check=False, stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeviceTimeoutError(f"`adb {' '.join(args)[:120]}` on {self.serial} did not finish within "
                                     f"{timeout:g} s (hang)", hint="raise the timeout, or check the device") from None

    def state(self) -> str:
        proc = subprocess.run([self._adb, "-s", self.serial, "get-state"], capture_output=True, text=True,
                              timeout=20, env=_env(self.server_port), check=False)
        return proc.stdout.strip() if proc.returncode == 0 else "missing"

    def _gone(self, what: str, detail: str) -> DeviceGoneError:
        return DeviceGoneError(f"device {self.serial} disappeared during {what}: {detail.strip()[:300] or 'no reply'}",
                               hint="check the cable / `adb devices`, then retry (--retries N)")

    def _check_transfer(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode == 0:
            return
        text = (proc.stderr + proc.stdout).decode(errors="replace")
        if "No space left" in text or "ENOSPC" in text:
            raise DeviceFullError(f"{what} failed: the device is out of storage: {text.strip()[:300]}",
                                  hint="free space on the device (adb shell rm ...)")
        if _GONE.search(text) or self.state() != "device":
            raise self._gone(what, text)
        raise DeviceError(f"{what} failed: {text.strip()[:300]}")

    def push(self, local: Path, remote: str) -> None:
        self._check_transfer(self._run(["push", str(local), remote], timeout=600), f"push {Path(local).name}")

    def pull(self, remote: str, local: Path) -> None:
        self._check_transfer(self._run(["pull", remote, str(local)], timeout=600), f"pull {remote}")

    def shell(self, cmd: list[str] | str, timeout: float | None = 60, stdin: bytes | None = None) -> ShellResult:
        # adb 29 exits 0 with whatever output came when the device vanishes mid-command (no exit packet), so the
        # command runs in a subshell followed by an end marker on stderr: no marker means the stream broke.
        script = f"( {shell_join(cmd)}\n)\n__mvd_s=$?; echo {_END}$__mvd_s >&2; exit $__mvd_s"
        proc = self._run(["shell", script], timeout=timeout, stdin=stdin)
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        head, sep, tail = err.rpartition(_END)
        if not sep or not tail.strip().isdigit():
            raise self._gone(f"`{shell_join(cmd)[:80]}`", err or "the shell ended without an exit status")
        return ShellResult(proc.returncode, out, head)

    def props(self) -> dict[str, str]:
        if self._props is None:
            result = self.shell("getprop")
            if not result.ok:
                raise DeviceError(f"getprop failed on {self.serial}: {result.stderr.strip()[:200]}")
            self._props = parse_getprop(result.stdout)
        return self._props

    def reconnect(self) -> None:
        """For a network serial (HOST:PORT), ask the server to connect again; USB devices come back on their own."""
        if ":" in self.serial:
            subprocess.run([self._adb, "connect", self.serial], capture_output=True, timeout=20,
                           env=_env(self.server_port), check=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.state() != "device":
            time.sleep(0.2)
