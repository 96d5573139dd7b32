"""What a compile target hands back: one file plus how it was built, so reports and benchmarks need no re-probing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

TargetName = Literal["tvm", "executorch", "onnx"]
Arch = Literal["host", "aarch64"]

EM_X86_64 = 62
EM_AARCH64 = 183


@dataclass
class Artifact:
    """A compiled model file: which runtime loads it, for which CPU, how long it took and how big it is.

    ``report`` holds target-specific facts (stage times, delegation breakdown, ELF machine, ...), kept as plain
    JSON-able values so it can be written next to the artifact.
    """

    target: TargetName
    arch: Arch
    profile: str
    path: str
    build_seconds: float
    size_bytes: int
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def elf_machine(path: str | Path) -> int | None:
    """``e_machine`` of an ELF file (62 x86-64, 183 AArch64), or None if it is not ELF.

    Checked instead of trusting the compiler name: a wrong linker silently produces a host library.
    """
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], order)
