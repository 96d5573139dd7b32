"""``mvd check``: list, before any compile, every op a target cannot run (TVM, ONNX Runtime) or will not delegate
to XNNPACK (ExecuTorch: those run on slower portable kernels), each with the module it came from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx
import torch

from mobilevit_deploy.checkpoints import resolve_checkpoint
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.models import create_model, model_info

CHECK_TARGETS = ("tvm", "executorch", "onnxruntime")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="scan a model or ONNX file for ops a target cannot run", description=__doc__)
    p.add_argument("model", help="a name from `mvd models`, or an .onnx file (tvm and onnxruntime only)")
    p.add_argument("--target", required=True, help=f"one of: {', '.join(CHECK_TARGETS)}")
    p.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    p.add_argument("--checkpoint", type=Path,
                   help="official-format checkpoint (.pth); default: the shipped demo checkpoint if there is one")
    p.add_argument("--random-weights", action="store_true", help="ignore the shipped demo checkpoint")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError and friends
        raise DeployError(f"{path} is not a readable ONNX file ({type(err).__name__})",
                          hint="pass a model name or a file written by `mvd export`") from None


def scan(model_or_onnx: str, target: str, input_size: int | None = None, checkpoint: Path | None = None):
    """The ``SupportReport`` for a zoo model (exported first for ONNX targets) or an ONNX file."""
    from mobilevit_deploy.targets.executorch_support import scan_torch_for_executorch
    from mobilevit_deploy.targets.onnxruntime_support import scan_onnx_for_onnxruntime
    from mobilevit_deploy.targets.tvm_support import scan_onnx_for_tvm

    if target not in CHECK_TARGETS:
        raise DeployError(f"unknown target '{target}'", hint=f"valid targets: {', '.join(CHECK_TARGETS)}")
    onnx_scans = {"tvm": scan_onnx_for_tvm, "onnxruntime": scan_onnx_for_onnxruntime}
    if model_or_onnx.endswith(".onnx"):
        if target == "executorch":
            raise DeployError("ExecuTorch lowers PyTorch programs, not ONNX files",
                              hint="pass the model name instead of the .onnx file")
        path = Path(model_or_onnx)
        if not path.is_file():
            raise DeployError(f"ONNX file not found: {path}", hint="check the path")
        return onnx_scans[target](_load_onnx(path))
    info = model_info(model_or_onnx)
    size = input_size or info.default_input_size
    info.check_input_size(size)
    model = create_model(model_or_onnx, checkpoint=checkpoint)
    if target == "executorch":
        return scan_torch_for_executorch(model, (torch.zeros(1, 3, size, size),))
    from mobilevit_deploy.export.onnx_export import torch_to_onnx

    return onnx_scans[target](torch_to_onnx(model, size))


def run(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint
    if not args.model.endswith(".onnx"):
        checkpoint, _note = resolve_checkpoint(args.model, args.checkpoint, args.random_weights)
    report = scan(args.model, args.target, args.input_size, checkpoint)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_table())
    return 0 if report.ok else 1
