"""``mvd profile``: latency of bundles on a device (adb, or ``local``), per thread count, checked against each
bundle's reference output; one comparison table, and ``--json`` written only when the run finished."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mobilevit_deploy.bundle.reader import load_bundle
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.devices.adb import AdbDevice, list_adb_devices
from mobilevit_deploy.targets.devices.base import Device
from mobilevit_deploy.targets.devices.local import LocalDevice
from mobilevit_deploy.targets.harness import profile
from mobilevit_deploy.targets.runner_build import QEMU_CPU, cache_dir


def _threads(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of thread counts") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("thread counts must be ≥ 1")
    return values


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure bundle latency on a device (adb or local)", description=__doc__)
    p.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE", help="folders written by `mvd compile`")
    p.add_argument("--device", default=None,
                   help="adb serial, or `local` (default: $ANDROID_SERIAL, else the only adb device)")
    p.add_argument("--warmup", type=_count, default=5)
    p.add_argument("--runs", type=_count, default=50)
    p.add_argument("--threads", type=_threads, default=[1, 2, 4], help="comma-separated, e.g. 1,2,4")
    p.add_argument("--pin", default=None, help="CPU list (4-7), big or little; needs taskset on the device")
    p.add_argument("--json", type=Path, default=None, help="write the full report here (atomically, at the end)")
    p.add_argument("--retries", type=_count, default=0, help="retries after a transient adb failure")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a runner counts as hung")
    p.set_defaults(run=run)


def pick_device(serial: str | None, first_bundle: Path) -> Device:
    if serial == "local":
        bundle = load_bundle(first_bundle, check_files=False)
        cpu = bundle.metadata["target"].get("qemu_cpu") or QEMU_CPU
        return LocalDevice(cache_dir() / "local-device", qemu_cpu=cpu, arch=bundle.arch)
    serial = serial or os.environ.get("ANDROID_SERIAL")
    if serial:
        return AdbDevice(serial)
    ready = [d.serial for d in list_adb_devices() if d.state == "device"]
    if len(ready) != 1:
        found = ", ".join(ready) or "none"
        raise DeployError(f"cannot choose a device: adb lists {found}",
                          hint="pass --device SERIAL (see `mvd devices`) or --device local")
    return AdbDevice(ready[0])


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise DeployError("--runs must be at least 1")
    device = pick_device(args.device, args.bundles[0])
    report = profile(args.bundles, device, warmup=args.warmup, runs=args.runs, threads=args.threads, pin=args.pin,
                     retries=args.retries, timeout=args.timeout,
                     log=lambda m: print(f"[profile] {m}", file=sys.stderr, flush=True))
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


