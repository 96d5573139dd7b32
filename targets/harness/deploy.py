"""Put a bundle on a device: runner, libraries, artifact and reference input in one folder per bundle, pushing a
file only when its sha256 differs from what the device already holds (read with ``sha256sum`` on the device, so
a file changed or deleted there is pushed again)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.bundle.checksums import sha256_file
from mobilevit_deploy.bundle.reader import Bundle
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.devices.base import Device

DEVICE_BASE = "/data/local/tmp/mvd"
INPUT_NAME = "input.npy"
OUTPUT_NAME = "output.npy"


@dataclass(frozen=True)
class Deployed:
    folder: str
    runner: str
    artifact: str
    pushed: tuple[str, ...]
    skipped: tuple[str, ...]




def bundle_folder(bundle: Bundle) -> str:
    """``/data/local/tmp/mvd/<bundle name>-<artifact hash>``: stable across runs, distinct per bundle."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", bundle.root.resolve().name)[:48] or "bundle"
    return f"{DEVICE_BASE}/{name}-{sha256_file(bundle.artifact)[:10]}"


def device_hashes(device: Device, folder: str) -> dict[str, str]:
    """name → sha256 of the files already in ``folder`` (empty when the folder does not exist yet)."""
    result = device.shell(f"cd {shlex.quote(folder)} 2>/dev/null && sha256sum * 2>/dev/null", timeout=120)
    hashes = {}
    for line in result.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            hashes[parts[1].strip().lstrip("*")] = parts[0]
    return hashes


def deploy(device: Device, bundle: Bundle, input_npy: Path) -> Deployed:
    if not bundle.runner_files:
        raise DeployError(f"bundle {bundle.root} ({bundle.runtime}) has no runner to run on a device",
                          hint="compile it with --target executorch or tvm")
    folder = bundle_folder(bundle)
    files = [*bundle.runner_files, bundle.artifact, input_npy]
    names = [p.name for p in files[:-1]] + [INPUT_NAME]
    if len(set(names)) != len(names):
        raise DeployError(f"bundle {bundle.root} has two files with the same name; cannot lay them out flat")
    have = device_hashes(device, folder)
    pushed, skipped = [], []
    for path, name in zip(files, names, strict=True):
        if have.get(name) == sha256_file(path):
            skipped.append(name)
            continue
        device.push(path, f"{folder}/{name}")
        pushed.append(name)
    runner = names[0]
    chmod = device.shell(f"chmod 755 {shlex.quote(f'{folder}/{runner}')}", timeout=30)
    if not chmod.ok:
        raise DeployError(f"cannot make the runner executable on {device.serial}: {chmod.stderr.strip()[:200]}")
    return Deployed(folder, runner, bundle.artifact.name, tuple(pushed), tuple(skipped))
