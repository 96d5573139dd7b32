"""``mvd export``: a zoo model to one verified ONNX file, with its export report next to it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.checkpoints import resolve_checkpoint
from mobilevit_deploy.export import DEFAULT_OPSET, PASS_NAMES, export_onnx, report_path
from mobilevit_deploy.models import create_model, model_info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a model to ONNX, verified against PyTorch", description=__doc__,
        epilog=f"passes, in order: {', '.join(PASS_NAMES)} (to_fp16 only with --fp16)",
    )
    p.add_argument("model", help="a name from `mvd models`")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--checkpoint", type=Path,
                   help="official-format checkpoint (.pth); default: the shipped demo checkpoint if there is one")
    p.add_argument("--random-weights", action="store_true", help="ignore the shipped demo checkpoint")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="load only the checkpoint tensors that match (e.g. ImageNet weights into a segmenter)")
    p.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--fp16", action="store_true", help="convert weights and activations to float16 (I/O stay fp32)")
    p.add_argument("--skip-pass", action="append", default=[], metavar="NAME",
                   help="switch a pass off by name, for debugging (repeatable)")
    p.add_argument("--cheap-verify", action="store_true",
                   help="verify only after the whole pass list instead of after every pass")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    size = args.input_size or info.default_input_size
    info.check_input_size(size)
    checkpoint, note = resolve_checkpoint(args.model, args.checkpoint, args.random_weights)
    if note:
        print(f"[checkpoint] {note}")
    model = create_model(args.model, checkpoint=checkpoint, strict=args.strict)
    if model.load_report is not None:
        print(f"[checkpoint] {model.load_report.summary()}")
    else:
        print(f"[checkpoint] none given: {args.model} has random weights")
    report = export_onnx(model, args.output, size, args.opset, fp16=args.fp16, skip_passes=set(args.skip_pass),
                         verify_each=not args.cheap_verify, log=lambda msg: print(f"[export] {msg}", flush=True))
    a = report.agreement
    print(report.format_table())
    print(f"[export] wrote {report.path} and {report_path(args.output)} in {report.total_seconds:.1f}s; "
          f"vs PyTorch: relative max diff {a.rel_max_diff:.1e}, argmax agreement {a.argmax_agreement:.2%}")
    return 0
