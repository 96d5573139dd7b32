"""Benchmark of the TVM integer rewrite (issue 8 item 3) on TopFormer-T: ONNX Runtime's QDQ model (U8 activations,
S8 per-channel weights, calibrated on the generated shapes task) built by TVM as float simulation and as integer
code, against TVM FP32 and ONNX Runtime (FP32 and its int8 kernels), all untuned, one thread, on this machine.

Per input size: how many convs/matmuls became integer, agreement with ONNX Runtime on the same QDQ model (exact and
within one output step; against its int8 kernels; and bit-exactness against TVM's own QDQ float simulation),
compile times, library sizes, host latency (median); for aarch64 (cortex-a76, +dotprod)
the dot-product and NEON integer-multiply instruction counts of the FP32 and integer libraries.

Writes tools/bench/results/tvm_integer.json and tvm_integer.md, rewritten after every size.
    python tools/bench/bench_tvm_integer.py [--sizes 64 512] [--aarch64-sizes 64] [--iters 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mobilevit_deploy.checkpoints import default_checkpoint
from mobilevit_deploy.data.generated import ShapesTask
from mobilevit_deploy.data.preprocess import Preprocess
from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.models import create_model
from mobilevit_deploy.targets.onnxruntime_qdq import quantize_static_qdq
from mobilevit_deploy.targets.tvm_integer.inspection import count_instructions, integer_instruction_summary
from mobilevit_deploy.targets.tvm_target import build_tvm, load_tvm_host

OUT = Path(__file__).resolve().parent / "results"
MODEL = "topformer_tiny"
CALIBRATION_IMAGES = 8
HELD_OUT_IMAGES = 4


def _median_ms(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, iters: int) -> float:
    run(x)  # warm-up
    times = []
    for _ in range(iters):
        tick = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - tick) * 1000)
    return statistics.median(times)


def _ort(path: Path, optimized: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _output_step(qdq: Path) -> float:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq))
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(inits[last.input[1]])


def bench_size(size: int, work: Path, iters: int, aarch64: bool) -> dict:
    model = create_model(MODEL, checkpoint=default_checkpoint(MODEL)).eval()
    pre = Preprocess.for_model(MODEL, size)
    task = ShapesTask(split="train", length=CALIBRATION_IMAGES + HELD_OUT_IMAGES)
    images = [pre(task[i].image).numpy() for i in range(len(task))]
    fp32, qdq = work / f"fp32_{size}.onnx", work / f"qdq_{size}.onnx"
    export_onnx(model, fp32, size, verify_each=False)
    quantize_static_qdq(fp32, qdq, images[:CALIBRATION_IMAGES])
    row: dict = {"size": size}

    builds = {"tvm_fp32": (fp32, False), "tvm_qdq_float_sim": (qdq, False), "tvm_int8": (qdq, True)}
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name, (source, integer) in builds.items():
        artifact = build_tvm(source, work / f"{name}_{size}.so", "host", integer=integer)
        row[name] = {"compile_s": round(artifact.report["compile_seconds"], 1),
                     "build_s": round(artifact.build_seconds, 1), "size_kb": artifact.size_bytes // 1024}
        if integer:
            row["integer"] = artifact.report["integer"]["summary"]
        runners[name] = load_tvm_host(artifact.path)
        print(name, row[name], flush=True)
    runners["ort_fp32"], runners["ort_int8"] = _ort(fp32), _ort(qdq)
    reference = _ort(qdq, optimized=False)

    step, held_out = _output_step(qdq), images[CALIBRATION_IMAGES:]
    pairs = {"tvm_int8_vs_ort_qdq_float_sim": ("tvm_int8", reference),
             "tvm_int8_vs_ort_int8_kernels": ("tvm_int8", runners["ort_int8"]),
             "tvm_int8_vs_tvm_qdq_float_sim": ("tvm_int8", runners["tvm_qdq_float_sim"]),
             "ort_int8_kernels_vs_ort_qdq_float_sim": ("ort_int8", reference)}  # the peer's own integer path
    for name, (tested, ref_run) in pairs.items():
        exact, within, worst = [], [], []
        for x in held_out:
            steps = np.abs(runners[tested](x).astype(np.float64) - ref_run(x)) / step
            exact.append(float((steps < 1e-3).mean()))
            within.append(float((steps <= 1 + 1e-3).mean()))
            worst.append(float(steps.max()))
        row[name] = {"exact": min(exact), "within_1_step": min(within), "max_steps": max(worst)}
    row["argmax_vs_fp32"] = min(float((runners["tvm_int8"](x).argmax(1) == runners["ort_fp32"](x).argmax(1)).mean())
                                for x in held_out)
    row["latency_ms"] = {name: round(_median_ms(run, held_out[0], iters), 2) for name, run in runners.items()}
    print(row["latency_ms"], flush=True)

    if aarch64:
        for name, (source, integer) in (("tvm_fp32", (fp32, False)), ("tvm_int8", (qdq, True))):
            lib = build_tvm(source, work / f"{name}_{size}_a76.so", "cortex-a76", integer=integer).path
            row.setdefault("aarch64_cortex_a76", {})[name] = integer_instruction_summary(count_instructions(lib))
        print(row["aarch64_cortex_a76"], flush=True)
    return row


def _write(results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tvm_integer.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# TVM integer code from QDQ ONNX: TopFormer-T", "", results["setup"], "",
             "| size | integer conv / matmul | compared | exact | within 1 step | max steps |", "|" + "---|" * 6]
    for r in results["runs"]:
        summary = r["integer"]
        counts = [f"{s['requantize'] + s['dequantize']}/{sum(s.values())}" for s in (summary["conv2d"],
                                                                                     summary["matmul"])]
        for name in ("tvm_int8_vs_ort_qdq_float_sim", "tvm_int8_vs_ort_int8_kernels",
                     "tvm_int8_vs_tvm_qdq_float_sim", "ort_int8_kernels_vs_ort_qdq_float_sim"):
            a = r[name]
            lines.append(f"| {r['size']} | {' / '.join(counts)} | {name.replace('_', ' ')} | {a['exact']:.5f} "
                         f"| {a['within_1_step']:.5f} | {a['max_steps']:.0f} |")
    lines += ["", "| size | argmax TVM int8 vs FP32 | compile s fp32 / int8 | library KB fp32 / int8 |",
              "|" + "---|" * 4]
    for r in results["runs"]:
        lines.append(f"| {r['size']} | {r['argmax_vs_fp32']:.4f} | {r['tvm_fp32']['compile_s']} / "
                     f"{r['tvm_int8']['compile_s']} | {r['tvm_fp32']['size_kb']} / {r['tvm_int8']['size_kb']} |")
    lines += ["", "Host latency, median ms (1 thread, untuned TVM):", "",
              "| size | TVM fp32 | TVM QDQ float sim | TVM int8 | int8 / fp32 | ORT fp32 | ORT int8 |",
              "|" + "---|" * 7]
    for r in results["runs"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['size']} | {lat['tvm_fp32']} | {lat['tvm_qdq_float_sim']} | {lat['tvm_int8']} "
                     f"| {lat['tvm_int8'] / lat['tvm_fp32']:.2f} | {lat['ort_fp32']} | {lat['ort_int8']} |")
    for r in results["runs"]:
        if "aarch64_cortex_a76" in r:
            counts = r["aarch64_cortex_a76"]
            lines += ["", f"aarch64 cortex-a76 at {r['size']}²: FP32 library {counts['tvm_fp32']}, "
                      f"int8 library {counts['tvm_int8']}"]
    (OUT / "tvm_integer.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 512])
    ap.add_argument("--aarch64-sizes", nargs="*", type=int, default=[64])
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {"setup": f"{MODEL} demo checkpoint; ONNX Runtime quantize_static QDQ (U8 activations, S8 "
                     f"per-channel weights, MinMax on {CALIBRATION_IMAGES} shapes-task images); agreement in output "
                     f"quantizer steps, worst of {HELD_OUT_IMAGES} held-out images; TVM untuned (default "
                     f"pipeline), median of {args.iters} runs, 1 thread, host CPU", "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-tvm-int-") as tmp:
        for size in args.sizes:
            results["runs"].append(bench_size(size, Path(tmp), args.iters, size in args.aarch64_sizes))
            _write(results)


if __name__ == "__main__":
    main()
