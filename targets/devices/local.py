"""The local device: a sandbox folder on this machine laid out like a phone, where aarch64 programs run under
qemu-aarch64 (on an x86 host) and native ones run directly. Shares the emulated phone's path mapping and command
rewriting, so a harness run against ``local`` behaves like one over adb, without adb."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
from pathlib import Path

from .base import Device, DeviceError, DeviceTimeoutError, ShellResult, parse_getprop, shell_join
from .emulator.commands import CommandRewriter
from .emulator.layout import PhoneSpec, prepare_root
from .emulator.sandbox import Sandbox, SandboxError


class LocalDevice(Device):
    serial = "local"

    def __init__(self, root: str | Path, qemu_cpu: str = "cortex-a76", arch: str = "aarch64") -> None:
        self.root = Path(root)
        self.arch = arch
        self.root.mkdir(parents=True, exist_ok=True)
        spec = PhoneSpec(model=f"local-{platform.node() or 'host'}", cpu=qemu_cpu, soc=f"host {platform.machine()}")
        prepare_root(self.root, spec)
        self.sandbox = Sandbox(self.root)
        self.rewriter = CommandRewriter(self.sandbox, qemu_cpu)

    def _host(self, remote: str) -> Path:
        try:
            return self.sandbox.to_host(remote)
        except SandboxError as err:
            raise DeviceError(f"refused device path: {err}") from None

    def push(self, local: Path, remote: str) -> None:
        dest = self._host(remote)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.push")
            shutil.copyfile(local, tmp)
            shutil.copymode(local, tmp)
            os.replace(tmp, dest)
        except OSError as err:
            raise DeviceError(f"push {local} → {remote} failed: {err.strerror}") from None

    def pull(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(self._host(remote), local)
        except OSError as err:
            raise DeviceError(f"pull {remote} failed: {err.strerror}") from None

    def shell(self, cmd: list[str] | str, timeout: float | None = 60, stdin: bytes | None = None) -> ShellResult:
        try:
            argv = self.rewriter.argv(shell_join(cmd))
        except SandboxError as err:
            return ShellResult(1, "", f"/system/bin/sh: {err}\n")
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=self.root, env=self.rewriter.host_env(), start_new_session=True)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise DeviceTimeoutError(f"`{shell_join(cmd)[:120]}` did not finish within {timeout:g} s (hang)",
                                     hint="raise the timeout, or check the runner on its own") from None
        return ShellResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def props(self) -> dict[str, str]:
        props = parse_getprop(self.shell("getprop").stdout)
        if self.arch == "host":
            props["ro.product.cpu.abi"] = platform.machine()
        return props
