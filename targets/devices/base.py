"""The Devices seam: one interface (push, pull, shell with exit code, props) for every place a runner runs.

Faults are typed so the harness can tell what happened: a device that went away (transient: worth a retry),
a command that hung, a full disk. All are ``DeployError``s, so the CLI prints them as one line with a hint.
"""

from __future__ import annotations

import abc
import shlex
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.errors import DeployError


class DeviceError(DeployError):
    """A device operation failed."""


class DeviceGoneError(DeviceError):
    """The device disappeared (unplugged, daemon killed, adb server lost it): transient, may be retried."""


class DeviceTimeoutError(DeviceError):
    """A command did not finish in time (a hang); its processes were killed."""


class DeviceFullError(DeviceError):
    """The device ran out of storage (ENOSPC) during a push."""


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def shell_join(cmd: list[str] | str) -> str:
    """A command for a device shell: a list is quoted word by word; a string is taken as already-formed shell."""
    return cmd if isinstance(cmd, str) else " ".join(shlex.quote(str(a)) for a in cmd)


class Device(abc.ABC):
    """A place to push files to and run commands on: a phone over adb, the host, or a local aarch64 sandbox."""

    serial: str

    @abc.abstractmethod
    def push(self, local: Path, remote: str) -> None:
        """Copy one local file to the device path ``remote`` (parent folders are created)."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> None:
        """Copy the device file ``remote`` to ``local``."""

    @abc.abstractmethod
    def shell(self, cmd: list[str] | str, timeout: float | None = 60, stdin: bytes | None = None) -> ShellResult:
        """Run a command in the device shell; never raises for a non-zero exit (that is in the result)."""

    @abc.abstractmethod
    def props(self) -> dict[str, str]:
        """System properties (``getprop``): ro.product.model, ro.product.cpu.abi, ro.soc.model, ..."""

    @property
    def abi(self) -> str:
        return self.props().get("ro.product.cpu.abi", "")

    def reconnect(self) -> None:  # noqa: B027 - optional: only adb devices can reconnect
        """Try to get a lost device back before a retry."""


def parse_getprop(text: str) -> dict[str, str]:
    """``[key]: [value]`` lines of ``getprop`` → dict."""
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "]: [" in line and line.endswith("]"):
            key, _, value = line[1:-1].partition("]: [")
            props[key] = value
    return props
