"""A private adb world for tests and scripts: the emulated phone in a subprocess, an adb server on its own port
with HOME in a scratch folder (adb writes ~/.android/adbkey), connected and polled until ``device``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.errors import DeployError

from .process import EmulatorProcess, spawn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AdbSession:
    emulator: EmulatorProcess
    server_port: int
    env: dict[str, str]
    root: Path

    @property
    def serial(self) -> str:
        return self.emulator.serial

    def adb(self, *args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess:
        """Run ``adb -s SERIAL ARGS`` against the private server."""
        return subprocess.run(["adb", "-s", self.serial, *args], env=self.env, capture_output=True, timeout=timeout,
                              check=False, **kw)

    def connect(self, timeout: float = 20) -> None:
        """``adb connect`` exits 0 even when refused, so poll ``get-state`` until it says ``device``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            subprocess.run(["adb", "connect", self.serial], env=self.env, capture_output=True, timeout=20, check=False)
            if self.adb("get-state", timeout=20, text=True).stdout.strip() == "device":
                return
            time.sleep(0.2)
        raise DeployError(f"adb never saw {self.serial} as a device")


@contextmanager
def adb_session(root: Path, home: Path, quota_bytes: int | None = None) -> Iterator[AdbSession]:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(port)}
    emulator = spawn(root, 0, quota_bytes=quota_bytes)
    session = AdbSession(emulator, port, env, root)
    try:
        session.connect()
        yield session
    finally:
        subprocess.run(["adb", "-P", str(port), "kill-server"], env=env, capture_output=True, timeout=30, check=False)
        emulator.stop()


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (to assert nothing was left running)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def server_listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
