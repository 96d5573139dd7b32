"""``mvd``: entry point. Each subcommand lives in its own module with ``add_parser`` and ``run``.

User mistakes (``DeployError``) print one or two lines and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mobilevit_deploy import __version__
from mobilevit_deploy.errors import DeployError

from . import (
    check_cmd,
    compile_cmd,
    device_cmd,
    devices_cmd,
    eval_cmd,
    export_cmd,
    models_cmd,
    profile_cmd,
    quantize_cmd,
    tune_cmd,
    verify_cmd,
)

SUBCOMMANDS = (models_cmd, export_cmd, check_cmd, compile_cmd, verify_cmd, eval_cmd,
               profile_cmd, devices_cmd, device_cmd, quantize_cmd, tune_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mvd",
        description="mobilevit-deploy: efficient ViT segmentation models from PyTorch to ARM phones "
        "(export, quantize, compile for TVM/ExecuTorch, profile on device).",
    )
    parser.add_argument("--version", action="version", version=f"mobilevit-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


# Library notices that are not about the user's model (torchao's CUDA kernels, a torch deprecation note).
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree")


def main(argv: Sequence[str] | None = None) -> int:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DeployError as err:
        print(f"mvd {args.command}: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  hint: {err.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mvd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
