"""Benchmark of post-training quantization (issue 7): FP32 vs W8A8/W6A6/W4A4 × uniform/log2/AdaLog/SULQ on the
demo checkpoints and the generated shapes task (calibration: train split; evaluation: val split, labelled), plus the
speed target (AdaLog W4A4 with FPCS, TopFormer-T, 512², 32 calibration images: time and peak RSS).

Writes tools/bench/results/quant.json and quant.md, rewritten after every run so partial results survive.
    python tools/bench/bench_quant.py [--models topformer_tiny casvit_xs_seg] [--size 256] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch

from mobilevit_deploy.checkpoints import default_checkpoint
from mobilevit_deploy.data.generated import ShapesTask
from mobilevit_deploy.data.preprocess import Preprocess
from mobilevit_deploy.models import create_model
from mobilevit_deploy.quant import AdaLogConfig, Log2Config, SULQConfig, UniformConfig
from mobilevit_deploy.quant.api import quantize
from mobilevit_deploy.quant.fidelity import fidelity, label_miou

OUT = Path(__file__).resolve().parent / "results"
METHODS = {"uniform": UniformConfig, "log2": Log2Config, "adalog": AdaLogConfig, "sulq": SULQConfig}
BITS = (8, 6, 4)


def _images(split: str, n: int, pre: Preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    task = ShapesTask(split=split, length=n)
    samples = [task[i] for i in range(n)]
    return (torch.cat([pre(s.image) for s in samples]),
            torch.stack([torch.from_numpy(s.label).long() for s in samples]))


def _write(results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quant.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Post-training quantization benchmark", "", results["setup"], "",
             "| model | method | bits | mIoU | agreement mIoU | e2e SQNR dB | softmax/GELU SQNR dB | calib+search s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['bits']} | {r['mIoU']:.4f} "
                     f"| {r.get('agreement_mIoU', 1):.4f} | {r.get('sqnr_db', float('inf')):.2f} "
                     f"| {r.get('log_point_sqnr_db', '')} "
                     f"| {r.get('seconds', 0):.1f} |")
    if "speed" in results:
        s = results["speed"]
        lines += ["", f"Speed target (AdaLog W4A4, FPCS, TopFormer-T, {s['size']}², {s['calib']} calibration images): "
                  f"{s['seconds']:.1f} s (calibration {s['calibration_s']:.1f} s, search {s['search_s']:.1f} s), "
                  f"peak RSS {s['peak_rss_mb']:.0f} MB; {s.get('cpu_seconds', float('nan')):.1f} CPU s on "
                  f"{s.get('threads', '?')} threads at load average {s.get('load_average_1min', float('nan')):.1f}"]
    (OUT / "quant.md").write_text("\n".join(lines) + "\n")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["topformer_tiny", "casvit_xs_seg"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--eval", type=int, default=32)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    results: dict = {"setup": f"demo checkpoints, shapes task: {args.calib} train images for calibration, "
                     f"{args.eval} val images for evaluation, {args.size}² input, 2 threads", "runs": []}
    if not args.skip_speed:
        model = create_model("topformer_tiny", checkpoint=default_checkpoint("topformer_tiny")).eval()
        pre = Preprocess.for_model("topformer_tiny", 512)
        calib, _ = _images("train", 32, pre)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        q = quantize(model, AdaLogConfig(), calib)
        # CPU seconds too: on a shared machine wall time measures the neighbours, CPU time measures the search
        results["speed"] = {"size": 512, "calib": 32, "seconds": time.perf_counter() - t0,
                            "cpu_seconds": _cpu_seconds() - c0, "threads": torch.get_num_threads(),
                            "load_average_1min": os.getloadavg()[0], **q.timings,
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        _write(results)
        del q, calib
    for name in args.models:
        model = create_model(name, checkpoint=default_checkpoint(name)).eval()
        pre = Preprocess.for_model(name, args.size)
        calib, _ = _images("train", args.calib, pre)
        images, labels = _images("val", args.eval, pre)
        with torch.no_grad():
            fp = model(images)
        results["runs"].append({"model": name, "method": "fp32", "bits": "32",
                                "mIoU": label_miou(fp, labels, ShapesTask.num_classes)})
        _write(results)
        for bits in BITS:
            for method in args.methods:
                cfg = METHODS[method](weight_bits=bits, act_bits=bits, attn_bits=bits)
                t0 = time.perf_counter()
                q = quantize(model, cfg, calib)
                secs = time.perf_counter() - t0
                rep = fidelity(model, q.module, q.table, images, labels, num_classes=ShapesTask.num_classes)
                logp = [p["sqnr_db"] for p in rep.points if p["role"] in ("softmax", "gelu_out")]
                results["runs"].append({
                    "model": name, "method": method, "bits": f"W{bits}A{bits}", "mIoU": rep.quant_miou,
                    "agreement_mIoU": rep.agreement_miou, "sqnr_db": rep.end_to_end_sqnr_db, "seconds": secs,
                    "log_point_sqnr_db": round(sum(logp) / len(logp), 2) if logp else None})
                print(results["runs"][-1], flush=True)
                _write(results)


if __name__ == "__main__":
    main()
