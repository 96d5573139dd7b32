"""``mvd compile``: build a bundle (artifact + runner + reference + metadata) for a target and CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.checkpoints import resolve_checkpoint
from mobilevit_deploy.compile import ARCHES, TARGETS, compile_bundle
from mobilevit_deploy.errors import DeployError


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
    p.add_argument("--tuning-db", type=Path,
                   help="TVM: the records folder of `mvd tune --db` (default: the records store under $MVD_CACHE)")
    p.add_argument("--with-app-backend", action="store_true",
                   help="also put the Android app backend into the bundle (app/: native library, MvdSegmenter jar, "
                   "integration note)")
    p.add_argument("--app-arch", choices=("host", "aarch64", "android-arm64"),
                   help="app backend build (default: the bundle's arch; android-arm64 needs ANDROID_NDK_HOME)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the bundle folder to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.with_app_backend and args.target == "onnx":
        raise DeployError("the app backend runs ExecuTorch or TVM artifacts, not ONNX bundles",
                          hint="use --target executorch (or tvm) with --with-app-backend")
    checkpoint, note = resolve_checkpoint(args.model, args.checkpoint, args.random_weights)
    if note:
        print(f"[compile] {note}")
    result = compile_bundle(args.model, args.target, args.output, arch=args.arch, cpu=args.cpu,
                            input_size=args.input_size, checkpoint=checkpoint, strict=args.strict,
                            log=lambda msg: print(f"[compile] {msg}", flush=True), tuning_db=args.tuning_db)
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
    if args.target == "tvm":
        tuning = r.get("build", {}).get("tuning", {})
        print("tuning     " + (f"tuned: {tuning['tasks_with_records']}/{tuning['tasks']} kernels have records"
                               if tuning.get("tuned") else "UNTUNED (see the warning above)"))
    if args.with_app_backend:
        from mobilevit_deploy.targets.app_backend import build_app_backend

        app = build_app_backend(result.bundle, args.app_arch)
        print(f"app        {app.folder} ({app.arch}): native library, MvdSegmenter jar, INTEGRATION.md")
    print(f"next       mvd verify {result.bundle}")
    return 0
