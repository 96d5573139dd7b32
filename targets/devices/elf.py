"""Recognise aarch64 ELF programs, so a device emulated on an x86 host knows what to run under qemu-aarch64."""

from __future__ import annotations

import platform
from pathlib import Path

EM_AARCH64 = 183


def is_aarch64_elf(path: Path) -> bool:
    """True for a little-endian ELF whose e_machine is 183 (AArch64); anything unreadable is False."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] != 1:
        return False
    return int.from_bytes(head[18:20], "little") == EM_AARCH64


def host_is_aarch64() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")
