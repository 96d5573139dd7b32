"""``mvd device emulate``: run the emulated phone (an adbd-speaking daemon over a local aarch64 sandbox)."""

from __future__ import annotations

import argparse

from mobilevit_deploy.targets.devices.emulator.process import add_arguments, serve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device", help="device utilities (the emulated phone)", description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    emulate = actions.add_parser("emulate", help="serve an emulated phone on 127.0.0.1 for `adb connect`",
                                 description="Foreground; prints the serial (127.0.0.1:PORT). Stop with Ctrl-C.")
    add_arguments(emulate)
    emulate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return serve(args)
