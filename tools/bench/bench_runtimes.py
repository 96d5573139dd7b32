"""Side-by-side latency of every runtime on the zoo, in one run, with the same inputs and thread counts.

Why: a deployment toolchain is judged by the milliseconds it delivers against the peers (issue 11). For each model
this builds every artifact (ONNX fp32, ONNX Runtime's own int8 in its best setting, ExecuTorch, TVM, and our int8
artifacts where their builders exist), then times each in a worker process of its own (``runtime_worker.py``)
at each thread count, next to a fp32 2048² GEMM measured in the same run (the machine's reachable peak).

Reports min and median ms, GFLOP/s and % of the GEMM rate, argmax agreement and SQNR against PyTorch fp32, build
time and artifact size; writes ``tools/bench/results/runtimes.{json,md}`` and two PNG plots (latency per runtime;
agreement against latency). Plots carry no text (no font here): the markdown table is the legend.

    python tools/bench/bench_runtimes.py [--models topformer_tiny ...] [--size 512] [--threads 1 2] [--runs 25]

TopFormer-T at 512², 1 and 2 threads, 25 runs: about 6 minutes on the 2-core machine (most of it the ExecuTorch
lowering and untuned TVM's ~0.7 s runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilevit_deploy.checkpoints import default_checkpoint
from mobilevit_deploy.data.generated import ShapesTask
from mobilevit_deploy.data.preprocess import Preprocess
from mobilevit_deploy.export.verify import compare_outputs
from mobilevit_deploy.models import create_model, model_info
from mobilevit_deploy.models._complexity import count_macs
from mobilevit_deploy.quant.metrics import sqnr_db

RESULTS = Path(__file__).parent / "results"
WORKER = Path(__file__).with_name("runtime_worker.py")


@dataclass
class Built:
    """One artifact ready to time: the worker kind, what it loads, how long it took to build and its size."""

    kind: str
    artifact: str
    build_s: float = 0.0
    size_bytes: int = 0
    note: str = ""


@dataclass
class Context:
    """What every builder may use: the model (demo weights where shipped), its size, a work folder, calibration."""

    name: str
    model: torch.nn.Module
    checkpoint: Path | None
    size: int
    work: Path
    calib: np.ndarray
    onnx_fp32: Path | None = None


def _timed(fn: Callable[[], Built]) -> Built:
    tick = time.perf_counter()
    built = fn()
    if not built.build_s:
        built.build_s = time.perf_counter() - tick
    if not built.size_bytes and Path(built.artifact).is_file():
        built.size_bytes = Path(built.artifact).stat().st_size
    return built


def build_torch(ctx: Context) -> Built:
    return Built("torch", f"{ctx.name}:{ctx.checkpoint or ''}@{ctx.size}")


def build_onnx_fp32(ctx: Context) -> Built:
    from mobilevit_deploy.export.onnx_export import export_onnx

    path = ctx.work / f"{ctx.name}.onnx"
    export_onnx(ctx.model, path, ctx.size, verify_each=False)
    ctx.onnx_fp32 = path
    return Built("onnxruntime", str(path))


def build_onnx_u8s8(ctx: Context) -> Built:
    """ONNX Runtime's int8 in its best setting here: QDQ, U8 activations / S8 per-channel weights, Softmax left out
    of the op list (its forced [0, 1] range destroys attention; reference/peers_and_baselines.md)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry

    assert ctx.onnx_fp32 is not None, "the fp32 ONNX is built first"
    import onnx

    input_name = onnx.load(ctx.onnx_fp32, load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{input_name: x[None]} for x in ctx.calib])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    path = ctx.work / f"{ctx.name}.ort-u8s8.onnx"
    quantize_static(str(ctx.onnx_fp32), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=[op for op in QDQRegistry if op != "Softmax"])
    return Built("onnxruntime", str(path), note="ORT quantize_static U8S8 per-channel, Softmax excluded")


def build_executorch_fp32(ctx: Context) -> Built:
    from mobilevit_deploy.targets.executorch_target import build_executorch

    art = build_executorch(ctx.model, ctx.size, ctx.work / f"{ctx.name}.pte")
    subgraphs = art.report.get("delegation", {}).get("delegated_subgraphs")
    return Built("executorch", art.path, art.build_seconds, art.size_bytes, note=f"{subgraphs} XNNPACK subgraphs")


def build_tvm_fp32(ctx: Context) -> Built:
    from mobilevit_deploy.targets.tvm_target import build_tvm

    assert ctx.onnx_fp32 is not None, "the fp32 ONNX is built first"
    art = build_tvm(ctx.onnx_fp32, ctx.work / f"{ctx.name}.tvm.so", profile="host")
    tuned = art.report.get("tuning", {}).get("applied")
    return Built("tvm", art.path, art.build_seconds, art.size_bytes, note="tuned" if tuned else "untuned")


# (runtime label, precision, builder); later builders may use what earlier ones left in the context
BUILDERS: list[tuple[str, str, Callable[[Context], Built]]] = [
    ("PyTorch eager", "fp32", build_torch),
    ("ONNX Runtime", "fp32", build_onnx_fp32),
    ("ONNX Runtime U8S8", "int8", build_onnx_u8s8),
    ("mvd ExecuTorch XNNPACK", "fp32", build_executorch_fp32),
    ("mvd TVM", "fp32", build_tvm_fp32),
]


def _worker(built: Built, inputs: Path, out: Path, threads: int, warmup: int, runs: int) -> dict[str, Any]:
    env = {**os.environ, "TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(WORKER), built.kind, built.artifact, str(inputs), str(out), "--threads", str(threads),
           "--warmup", str(warmup), "--runs", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"worker failed ({proc.returncode}): {tail}")
    return json.loads(lines[-1])


def measure_model(name: str, size: int | None, threads: list[int], warmup: int, runs: int, images: int,
                  gemm: dict[int, float], log: Callable[[str], None]) -> list[dict[str, Any]]:
    size = size or model_info(name).default_input_size
    checkpoint = default_checkpoint(name)
    model = create_model(name, checkpoint=checkpoint).eval()
    gflop = 2 * count_macs(model, size) / 1e9
    pre = Preprocess.for_model(name, size)
    task = ShapesTask(split="val", length=images + 8, size=size)
    inputs = pre([task[i].image for i in range(images)]).numpy()
    calib = pre([ShapesTask(split="train", length=8, size=size)[i].image for i in range(8)]).numpy()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        work = Path(tmp)
        np.save(work / "inputs.npy", inputs)
        ctx = Context(name, model, checkpoint, size, work, calib)
        with torch.inference_mode():
            ref = model(torch.from_numpy(inputs)).numpy()
        for label, precision, builder in BUILDERS:
            row: dict[str, Any] = {"model": name, "input_size": size, "runtime": label, "precision": precision,
                                   "gflop": round(gflop, 3)}
            try:
                built = _timed(lambda b=builder: b(ctx))
            except Exception as err:  # a runtime that cannot build this model is a row, not a crash
                log(f"[bench] {name} {label}: build failed: {err}")
                rows.append({**row, "error": f"build: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                             "trace": traceback.format_exc(limit=3)})
                continue
            row.update(build_s=round(built.build_s, 1), size_mb=round(built.size_bytes / 1e6, 2), note=built.note)
            for n in threads:
                try:
                    res = _worker(built, work / "inputs.npy", work / "out.npy", n, warmup, runs)
                except RuntimeError as err:
                    log(f"[bench] {name} {label} {n} thr: {err}")
                    rows.append({**row, "threads": n, "error": str(err)})
                    continue
                out = np.load(work / "out.npy")
                t = np.array(res["times_ms"])
                agree = compare_outputs(out, ref).argmax_agreement
                rows.append({**row, "threads": n, "min_ms": round(float(t.min()), 2),
                             "median_ms": round(float(np.median(t)), 2),
                             "gflops": round(gflop / (t.min() / 1e3), 1),
                             "pct_gemm_peak": round(100 * gflop / (t.min() / 1e3) / gemm[n], 1),
                             "agreement": round(agree, 5),
                             "sqnr_db": round(sqnr_db(torch.from_numpy(ref), torch.from_numpy(out)), 1)})
                log(f"[bench] {name} {label} {precision} {n} thr: min {t.min():.2f} ms, median "
                    f"{np.median(t):.2f} ms, agreement {agree:.4f}")
    return rows


def measure_gemm(threads: list[int], work: Path) -> dict[int, float]:
    """fp32 GFLOP/s of a 2048² matmul (torch/MKL) per thread count: the reachable peak the table compares to."""
    np.save(work / "none.npy", np.zeros((1, 1), np.float32))
    rates = {}
    for n in threads:
        res = _worker(Built("gemm", "-"), work / "none.npy", work / "none-out.npy", n, 3, 10)
        rates[n] = 2 * 2048**3 / (min(res["times_ms"]) / 1e3) / 1e9
    return rates


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = ["# Runtime benchmark", "", results["setup"], "",
             "GEMM peak (fp32 2048² matmul, same run): " + ", ".join(
                 f"{n} thr {r:.0f} GFLOP/s" for n, r in results["gemm_gflops"].items()), "",
             "| model | runtime | prec | thr | min ms | median ms | GFLOP/s | % GEMM | agree | SQNR dB | build s | MB "
             "| note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r.get('threads', '')} | "
                         f"failed: {r['error']} |  |  |  |  |  |  |  |  |")
            continue
        lines.append(f"| {r['model']} {r['input_size']}² | {r['runtime']} | {r['precision']} | {r['threads']} | "
                     f"{r['min_ms']} | {r['median_ms']} | {r['gflops']} | {r['pct_gemm_peak']} | {r['agreement']} | "
                     f"{r['sqnr_db']} | {r['build_s']} | {r['size_mb']} | {r['note']} |")
    path.write_text("\n".join(lines) + "\n")


def write_plots(rows: list[dict[str, Any]], stem: Path) -> None:
    """Latency bars (one per row, log scale, colour = runtime) and agreement-vs-latency dots."""
    from mobilevit_deploy.png import encode_png
    from mobilevit_deploy.quant.png import PALETTE, bar_chart

    ok = [r for r in rows if "error" not in r]
    if not ok:
        return
    labels = sorted({r["runtime"] for r in ok})
    logs = [np.log10(max(r["min_ms"], 0.1)) + 1 for r in ok]  # 0.1 ms → 0, 1 ms → 1, 10 ms → 2, ...
    img = bar_chart([v * 10 for v in logs], [labels.index(r["runtime"]) for r in ok], bar=12, gap=3)
    stem.with_name(stem.name + "-latency.png").write_bytes(encode_png(img))
    h, w = 240, 480
    canvas = np.full((h, w, 3), 255, np.uint8)
    top = max(logs) * 1.05
    for r, v in zip(ok, logs, strict=True):
        x = int(v / top * (w - 8)) + 4
        y = int((1 - min(max((r["agreement"] - 0.9) / 0.1, 0), 1)) * (h - 8)) + 4  # agreement 0.9..1 → bottom..top
        canvas[y - 3:y + 4, x - 3:x + 4] = PALETTE[labels.index(r["runtime"]) % len(PALETTE)]
    stem.with_name(stem.name + "-accuracy-latency.png").write_bytes(encode_png(canvas))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["topformer_tiny"])
    p.add_argument("--size", type=int, help="square input (default: each model's default)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=25)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--images", type=int, default=4, help="generated val images for agreement and SQNR")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "runtimes.json")
    args = p.parse_args(argv)
    start = time.perf_counter()
    log = lambda m: print(m, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        gemm = measure_gemm(args.threads, Path(tmp))
    log("[bench] GEMM peak: " + ", ".join(f"{n} thr {r:.0f} GFLOP/s" for n, r in gemm.items()))
    rows: list[dict[str, Any]] = []
    for name in args.models:
        rows += measure_model(name, args.size, args.threads, args.warmup, args.runs, args.images, gemm, log)
    results = {"setup": f"{args.runs} timed runs after {args.warmup} warm-up, one worker process per runtime and "
               f"thread count; accuracy on {args.images} generated val images against PyTorch fp32 (demo "
               f"checkpoints where shipped); took {time.perf_counter() - start:.0f} s",
               "gemm_gflops": {str(n): round(r, 1) for n, r in gemm.items()},
               "rows": [{k: v for k, v in r.items() if k != "trace"} for r in rows]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, args.output.with_suffix(".md"))
    write_plots(results["rows"], args.output.with_suffix(""))
    log(f"[bench] wrote {args.output} and {args.output.with_suffix('.md')} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
