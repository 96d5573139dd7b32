"""``mvd verify``: run a bundle on its reference input where it belongs and compare with the stored output."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.bundle.verify import MIN_AGREEMENT, REL_TOLERANCE, verify_bundle


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a bundle against its stored ONNX Runtime reference", description=__doc__)
    p.add_argument("bundle", type=Path, help="a folder written by `mvd compile`")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = verify_bundle(args.bundle)
    a = result.agreement
    verdict = "PASS" if result.passed else "FAIL"
    print(f"{verdict}  {args.bundle} on {result.where}: relative max diff {a.rel_max_diff:.2e} "
          f"(≤ {REL_TOLERANCE:g}), argmax agreement {a.argmax_agreement:.2%} (≥ {MIN_AGREEMENT:.1%})")
    if result.runner is not None:
        print(f"      runner {result.runner.runtime} {result.runner.runtime_version}, load "
              f"{result.runner.load_ms:.0f} ms, peak RSS {result.runner.peak_rss_kb / 1024:.0f} MB")
    return 0 if result.passed else 1
