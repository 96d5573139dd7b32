"""Which ONNX exporter to use: both of torch 2.13's exporters on every zoo model, measured side by side.

For each model at its default input size: did the export succeed, how long it took, how many nodes and which
"shape plumbing" ops (Shape/Gather/Constant/Identity) the graph has, and the relative max diff of ONNX Runtime
against PyTorch. Writes ``tools/bench/results/exporters.json`` and a markdown table next to it.

    .venv/bin/python tools/bench/bench_exporters.py [--models topformer_tiny,...] [--size N]

About 5 minutes on the 2-core machine for the whole zoo.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from mobilevit_deploy.export.verify import compare_outputs, run_onnxruntime, seeded_image_batch
from mobilevit_deploy.models import create_model, list_models, model_info

RESULTS = Path(__file__).parent / "results"
PLUMBING = {"Shape", "Gather", "Constant", "Identity", "Unsqueeze", "Slice", "Cast"}


def export(model: torch.nn.Module, size: int, dynamo: bool) -> tuple[onnx.ModelProto, float]:
    x = torch.zeros(1, 3, size, size)
    buffer = io.BytesIO()
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            proto = torch.onnx.export(model, (x,), None, dynamo=True, opset_version=18, verbose=False).model_proto
        else:
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=18)
            proto = onnx.load_from_string(buffer.getvalue())
    return proto, time.perf_counter() - start


def measure(name: str, size: int | None) -> list[dict]:
    size = size or model_info(name).default_input_size
    model = create_model(name)
    x = seeded_image_batch(size)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    rows = []
    for dynamo in (False, True):
        row: dict = {"model": name, "input_size": size, "exporter": "dynamo" if dynamo else "torchscript"}
        try:
            proto, seconds = export(model, size, dynamo)
            ops = collections.Counter(n.op_type for n in proto.graph.node)
            agreement = compare_outputs(run_onnxruntime(proto.SerializeToString(), x), ref)
            row.update(ok=True, seconds=round(seconds, 2), nodes=sum(ops.values()),
                       plumbing_nodes=sum(v for k, v in ops.items() if k in PLUMBING),
                       rel_max_diff=agreement.rel_max_diff, argmax_agreement=agreement.argmax_agreement)
        except Exception as err:  # a failure is a result here
            row.update(ok=False, error=str(err).strip().splitlines()[0][:200] if str(err).strip() else repr(err))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--size", type=int, help="override every model's input size")
    args = parser.parse_args()
    logging.getLogger("torch.onnx").setLevel(logging.CRITICAL)
    torch.set_num_threads(1)
    rows = [r for name in args.models.split(",") for r in measure(name, args.size)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exporters.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| model | size | exporter | ok | seconds | nodes | shape plumbing | rel max diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['input_size']} | {r['exporter']} | {r['ok']} | {r.get('seconds', '-')} | "
                     f"{r.get('nodes', '-')} | {r.get('plumbing_nodes', '-')} | "
                     f"{np.format_float_scientific(r['rel_max_diff'], 2) if r['ok'] else r['error']} |")
    (RESULTS / "exporters.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
