"""``mvd models``: the zoo as a table (or JSON): task, default input size, parameters, GMACs, checkpoint format."""

from __future__ import annotations

import argparse
import json

import torch

from mobilevit_deploy.models import count_macs, count_params, create_model, list_models, model_info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'topformer*' (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def zoo_rows(pattern: str = "*") -> list[dict]:
    """One row per registered model; MACs are counted on the meta device at the default input size."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        rows.append({
            "name": name,
            "task": info.task.value,
            "input_size": info.default_input_size,
            "num_classes": info.num_classes,
            "params": count_params(model),
            "gmacs": round(count_macs(model, info.default_input_size) / 1e9, 3),
            "output_stride": info.output_stride or None,
            "checkpoint_format": info.checkpoint_format,
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = zoo_rows(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}")
        return 1
    header = ("model", "task", "input", "params", "GMACs", "checkpoint format")
    table = [(r["name"], r["task"], f'{r["input_size"]}²', f'{r["params"] / 1e6:.3f}M', f'{r["gmacs"]:.3f}',
              r["checkpoint_format"]) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *table, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0
