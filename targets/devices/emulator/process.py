"""Run the emulated phone as a subprocess (``python -m ...emulator``), the way tests and scripts use it."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.errors import DeployError


@dataclass
class EmulatorProcess:
    proc: subprocess.Popen
    port: int

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (clean shutdown), then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL: the phone vanishes as if unplugged."""
        self.proc.kill()
        self.proc.wait()


def spawn(root: str | Path, port: int = 0, cpu: str = "cortex-a76", model: str | None = None,
          quota_bytes: int | None = None, timeout: float = 20) -> EmulatorProcess:
    """Start the daemon in a subprocess and wait until it prints its serial."""
    cmd = [sys.executable, "-m", "mobilevit_deploy.targets.devices.emulator", "--root", str(root),
           "--port", str(port), "--cpu", cpu]
    if model:
        cmd += ["--model", model]
    if quota_bytes is not None:
        cmd += ["--quota-bytes", str(quota_bytes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].strip():
        proc.kill()
        proc.wait()
        raise DeployError("the emulated phone did not start", hint="run `mvd device emulate` to see why")
    return EmulatorProcess(proc, int(line[0].strip().rsplit(":", 1)[1]))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5555, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--root", type=Path, default=Path("mvd-phone"), help="sandbox folder holding the device tree")
    p.add_argument("--cpu", default="cortex-a76", help="CPU that qemu-aarch64 emulates")
    p.add_argument("--model", default=None, help="ro.product.model")
    p.add_argument("--quota-bytes", type=int, default=None, help="simulated disk size (pushes beyond it fail)")
    p.add_argument("--command-timeout", type=float, default=3600, help="kill a shell command after this many s")


def serve(args: argparse.Namespace) -> int:
    """Foreground daemon: print the serial, serve until SIGINT/SIGTERM, then stop cleanly."""
    from .daemon import EmulatedPhone
    from .layout import PhoneSpec

    spec = PhoneSpec(cpu=args.cpu, **({"model": args.model} if args.model else {}))
    try:
        phone = EmulatedPhone(args.root, args.port, spec, command_timeout=args.command_timeout,
                              quota_bytes=args.quota_bytes)
    except OSError as err:
        raise DeployError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror}",
                          hint="pick another --port, or 0 for any free one") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    phone.start()
    print(phone.serial, flush=True)
    stop.wait()
    phone.stop()
    return 0
