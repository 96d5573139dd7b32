"""``mvd export``: a zoo model to one verified ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.export.onnx_export import DEFAULT_OPSET
from mobilevit_deploy.models import create_model, model_info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, verified against PyTorch", description=__doc__)
    p.add_argument("model", help="a name from `mvd models`")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--checkpoint", type=Path, help="official-format checkpoint (.pth); random weights if omitted")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="load only the checkpoint tensors that match (e.g. ImageNet weights into a segmenter)")
    p.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    size = args.input_size or info.default_input_size
    info.check_input_size(size)
    model = create_model(args.model, checkpoint=args.checkpoint, strict=args.strict)
    if model.load_report is not None:
        print(f"[checkpoint] {model.load_report.summary()}")
    elif args.checkpoint is None:
        print(f"[checkpoint] none given: {args.model} has random weights")
    print(f"[export] {args.model} at {size}x{size}, opset {args.opset} ...", flush=True)
    result = export_onnx(model, args.output, size, args.opset)
    a = result.agreement
    print(f"[export] wrote {result.path} ({result.size_bytes / 1e6:.1f} MB) in {result.seconds:.1f}s; "
          f"vs PyTorch: relative max diff {a.rel_max_diff:.1e}, argmax agreement {a.argmax_agreement:.2%}")
    return 0
