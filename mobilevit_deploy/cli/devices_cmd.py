"""``mvd devices``: the devices `mvd profile --device` can use (``adb devices -l`` plus ``local``)."""

from __future__ import annotations

import argparse
import shutil

from mobilevit_deploy.targets.devices.adb import AdbDevice, list_adb_devices
from mobilevit_deploy.targets.devices.base import DeviceError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list reachable devices (adb and local)", description=__doc__)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = [("serial", "model", "abi", "state")]
    if shutil.which("adb"):
        for d in list_adb_devices():
            abi = ""
            if d.state == "device":
                try:
                    abi = AdbDevice(d.serial).props().get("ro.product.cpu.abi", "")
                except DeviceError:
                    abi = "?"
            rows.append((d.serial, d.model or "?", abi, d.state))
    rows.append(("local", "this machine (aarch64 under qemu-aarch64)", "arm64-v8a", "device"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
