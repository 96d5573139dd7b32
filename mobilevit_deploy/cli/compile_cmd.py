"""``mvd compile``: build a bundle (artifact + runner + reference + metadata) for a target and CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.checkpoints import resolve_checkpoint
from mobilevit_deploy.compile import ARCHES, TARGETS, compile_bundle


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mobilevit_deploy.targets.cpu_profiles import PROFILE_NAMES

    p = sub.add_parser("compile", help="compile a model into a bundle for TVM, ExecuTorch or ONNX Runtime",
                       description=__doc__)
    p.add_argument("model", help="a name from `mvd models`")
    p.add_argument("--target", required=True, help=f"one of: {', '.join(TARGETS)}")
    p.add_argument("--arch", default="aarch64", help=f"one of: {', '.join(ARCHES)} (default aarch64)")
    p.add_argument("--cpu", help=f"CPU profile: {', '.join(PROFILE_NAMES)} (default: cortex-a76 for aarch64)")
    p.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    p.add_argument("--checkpoint", type=Path,
                   help="official-format checkpoint (.pth); default: the shipped demo checkpoint if there is one")
    p.add_argument("--random-weights", action="store_true", help="ignore the shipped demo checkpoint")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="load only matching checkpoint tensors")
    p.add_argument("-o", "--output", type=Path, required=True, help="the bundle folder to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    checkpoint, note = resolve_checkpoint(args.model, args.checkpoint, args.random_weights)
    if note:
        print(f"[compile] {note}")
    result = compile_bundle(args.model, args.target, args.output, arch=args.arch, cpu=args.cpu,
                            input_size=args.input_size, checkpoint=checkpoint, strict=args.strict,
                            log=lambda msg: print(f"[compile] {msg}", flush=True))
    r = result.report
    delegation = r.get("build", {}).get("delegation", {})
    outside = [f"{op} x{n}" for op, n in delegation.get("non_delegated", {}).items()]
    print(f"\nbundle     {result.bundle}")
    print(f"model      {r['model']} at {r['input_size']}x{r['input_size']}, target {r['target']}, arch {r['arch']}, "
          f"cpu {r['cpu']}")
    print(f"artifact   {result.artifact_bytes / 1e6:.2f} MB; runtime libraries {result.runtime_lib_bytes / 1e6:.2f} MB")
    print("stages     " + ", ".join(f"{k} {v:.1f}s" for k, v in result.stages.items()))
    if args.target == "executorch":
        print(f"portable   {', '.join(outside) if outside else 'none: every op is delegated to XNNPACK'}")
    print(f"next       mvd verify {result.bundle}")
    return 0
