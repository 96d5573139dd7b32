"""Device path → sandbox path mapping: everything the emulated phone stores lives under one host folder.

Refuses (SandboxError) a path that climbs above the device root with ``..``, an absolute path outside the
device tree (``/etc/passwd``, ``/home/...``), and a path whose existing part resolves through a symlink to
somewhere outside the sandbox. Used by the sync service (push/pull) and by shell-command rewriting.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

# Top-level folders of the device tree; any other absolute path is outside the device.
DEVICE_TOPS = frozenset({"data", "sdcard", "storage", "system", "vendor", "sys", "mnt", "product", "odm", "cache",
                         "apex"})


class SandboxError(Exception):
    """A device path that would leave the sandbox."""


class Sandbox:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def device_parts(self, device_path: str, cwd: str = "/") -> list[str]:
        """Normalised components of ``device_path`` (relative ones against ``cwd``), refusing escapes."""
        if "\0" in device_path:
            raise SandboxError("a device path may not contain NUL")
        full = device_path if device_path.startswith("/") else posixpath.join(cwd, device_path)
        parts: list[str] = []
        for comp in full.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    raise SandboxError(f"{device_path}: '..' climbs above the device root")
                parts.pop()
            else:
                parts.append(comp)
        if parts and parts[0] not in DEVICE_TOPS:
            raise SandboxError(f"{device_path}: outside the device tree")
        return parts

    def normalize(self, device_path: str, cwd: str = "/") -> str:
        return "/" + "/".join(self.device_parts(device_path, cwd))

    def to_host(self, device_path: str, cwd: str = "/") -> Path:
        """Host path for a device path; symlinks in its existing part must stay inside the sandbox."""
        host = self.root.joinpath(*self.device_parts(device_path, cwd))
        real = host.resolve(strict=False)
        if real != self.root and not real.is_relative_to(self.root):
            raise SandboxError(f"{device_path}: a symlink leads outside the device")
        return real

    def to_device(self, host: Path) -> str:
        """Device path of a host path inside the sandbox (for messages)."""
        return "/" + host.resolve().relative_to(self.root).as_posix()
