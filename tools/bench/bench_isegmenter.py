"""Benchmark of the integer-only I-Segmenter (issue 9): accuracy against its float model with 1 and 32 calibration
images, artifact sizes (ONNX and TVM library) and host latency of the integer-only TVM build against the float one.

isegmenter_tiny with its seeded random initialisation unless a demo checkpoint ships (none does yet: training needs
the CPU), so the accuracy columns measure how faithfully the integer model follows the float one (SQNR of the
patch logits, argmax agreement per pixel on held-out shapes-task images), not segmentation quality. Both TVM builds
are untuned (``build_tvm``, default pipeline, LLVM default optimisation), one thread, on this machine; the integer
build is also checked bit-exact against the PyTorch integer model there.

Writes tools/bench/results/isegmenter.json and isegmenter.md, rewritten after every size.
    python tools/bench/bench_isegmenter.py [--sizes 64] [--iters 10] [--aarch64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_tvm_integer import _median_ms, _ort  # the same timing and ONNX Runtime setup (run from tools/bench)

from mobilevit_deploy.checkpoints import default_checkpoint
from mobilevit_deploy.data.generated import ShapesTask
from mobilevit_deploy.data.preprocess import Preprocess
from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.export.integer_only import export_integer_onnx
from mobilevit_deploy.models import create_model
from mobilevit_deploy.quant.int_segmenter import IntSegmenter, convert_segmenter
from mobilevit_deploy.targets.tvm_target import build_tvm, load_tvm_host

OUT = Path(__file__).resolve().parent / "results"
MODEL = "isegmenter_tiny"
HELD_OUT = 8
CALIBRATIONS = {"1 image": (1, False), "32 images": (32, False), "32 images, λ-ShiftGELU": (32, True)}


def _stripped_kb(lib: Path, strip: str) -> int:
    """The library's size without debug sections (LLVM's debug info is ~14 % of the integer build)."""
    out = lib.with_suffix(".stripped.so")
    subprocess.run([strip, "--strip-debug", "-o", str(out), str(lib)], check=True)
    return out.stat().st_size // 1024


def _fidelity(model: torch.nn.Module, int_model: IntSegmenter, held_out: torch.Tensor) -> dict:
    """SQNR of the patch logits and argmax agreement per pixel, integer model against the float model."""
    with torch.no_grad():
        ref = model.forward_masks(held_out).double()
        approx = int_model.forward_masks_int(int_model.quantize_input(held_out)).double() * int_model.output_scale
        pixels = float((model(held_out).argmax(1) == int_model(held_out).argmax(1)).double().mean())
    sqnr = 10 * torch.log10(ref.pow(2).sum() / (ref - approx).pow(2).sum())
    return {"sqnr_db": round(float(sqnr), 2), "pixel_agreement": round(pixels, 4),
            "patch_agreement": round(float((ref.argmax(1) == approx.argmax(1)).double().mean()), 4)}


def bench_size(size: int, work: Path, iters: int, aarch64: bool) -> dict:
    checkpoint = default_checkpoint(MODEL)
    model = create_model(MODEL, checkpoint=checkpoint).eval()
    pre = Preprocess.for_model(MODEL, size)
    calib = pre([s.image for s in ShapesTask(split="train", length=32)])
    held_out = pre([s.image for s in ShapesTask(split="val", length=HELD_OUT)])
    row: dict = {"size": size, "weights": "demo checkpoint" if checkpoint else "random init (seeded)"}

    int_models = {}
    for name, (count, fit_lambda) in CALIBRATIONS.items():
        tick = time.perf_counter()
        int_models[name] = convert_segmenter(model, calib[:count], fit_gelu_lambda=fit_lambda)
        row.setdefault("fidelity", {})[name] = {**_fidelity(model, int_models[name], held_out),
                                                "convert_s": round(time.perf_counter() - tick, 1)}
        print(name, row["fidelity"][name], flush=True)
    int_model = int_models["32 images"]

    fp32_onnx, int_onnx = work / f"fp32_{size}.onnx", work / f"int_{size}.onnx"
    export_onnx(model, fp32_onnx, size, verify_each=False)
    report = export_integer_onnx(int_model, int_onnx)
    row["onnx"] = {"fp32_kb": fp32_onnx.stat().st_size // 1024, "integer_kb": report.size_bytes // 1024,
                   "integer_initializers_kb": report.weight_bytes // 1024, "integer_nodes": report.nodes,
                   "float_params_kb": 4 * sum(p.numel() for p in model.parameters()) // 1024}

    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {"ort_fp32": _ort(fp32_onnx),
                                                              "ort_integer": _ort(int_onnx)}
    row["tvm"] = {}
    for name, source in (("fp32", fp32_onnx), ("integer", int_onnx)):
        artifact = build_tvm(source, work / f"{name}_{size}.so", "host")
        row["tvm"][name] = {"size_kb": artifact.size_bytes // 1024,
                            "stripped_kb": _stripped_kb(Path(artifact.path), "strip"),
                            "build_s": round(artifact.build_seconds, 1),
                            "compile_s": round(artifact.report["compile_seconds"], 1),
                            "link_s": round(artifact.report["link_seconds"], 1)}
        runners[f"tvm_{name}"] = load_tvm_host(artifact.path)
        print(name, row["tvm"][name], flush=True)
        if aarch64:
            lib = build_tvm(source, work / f"{name}_{size}_a76.so", "cortex-a76")
            row["tvm"][name]["aarch64_size_kb"] = lib.size_bytes // 1024
            row["tvm"][name]["aarch64_stripped_kb"] = _stripped_kb(Path(lib.path), "aarch64-linux-gnu-strip")

    mismatched = 0
    for x in held_out.split(1):
        with torch.no_grad():
            want = int_model(x).numpy()
        mismatched += int((runners["tvm_integer"](x.numpy()) != want).sum())
    row["tvm_integer_mismatched_logits_vs_pytorch"] = mismatched
    x = held_out[:1].numpy()
    row["latency_ms"] = {name: round(_median_ms(run, x, iters), 2) for name, run in runners.items()}
    print(row["latency_ms"], flush=True)
    return row


def _write(results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "isegmenter.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    lines = ["# Integer-only I-Segmenter-Tiny: accuracy, size, latency", "", results["setup"], "",
             "Integer model against its float model (held-out shapes-task images):", "",
             "| size | weights | calibration | SQNR dB (patch logits) | argmax agreement (pixels) | (patches) |",
             "|" + "---|" * 6]
    for r in results["runs"]:
        for name, f in r["fidelity"].items():
            lines.append(f"| {r['size']} | {r['weights']} | {name} | {f['sqnr_db']} | {f['pixel_agreement']:.4f} "
                         f"| {f['patch_agreement']:.4f} |")
    lines += ["", "Artifact sizes, KB (integer model: 32 calibration images; TVM .so as built / without debug "
              "sections):", "",
              "| size | float params | ONNX fp32 | ONNX integer (initializers) | ONNX ratio | TVM .so fp32 "
              "| TVM .so integer | .so ratio | aarch64 .so fp32 / integer |", "|" + "---|" * 9]
    for r in results["runs"]:
        o, t = r["onnx"], r["tvm"]
        fp, it = t["fp32"], t["integer"]
        a64 = (f"{fp['aarch64_size_kb']} / {it['aarch64_size_kb']} (stripped {fp['aarch64_stripped_kb']} / "
               f"{it['aarch64_stripped_kb']})" if "aarch64_size_kb" in fp else "–")
        lines.append(f"| {r['size']} | {o['float_params_kb']} | {o['fp32_kb']} | {o['integer_kb']} "
                     f"({o['integer_initializers_kb']}) | {o['fp32_kb'] / o['integer_kb']:.2f}x "
                     f"| {fp['size_kb']} / {fp['stripped_kb']} | {it['size_kb']} / {it['stripped_kb']} "
                     f"| {fp['size_kb'] / it['size_kb']:.2f}x / {fp['stripped_kb'] / it['stripped_kb']:.2f}x "
                     f"| {a64} |")
    lines += ["", "Host latency, median ms (1 thread; TVM untuned, both builds), and TVM build times:", "",
              "| size | TVM fp32 | TVM integer | integer / fp32 | ORT fp32 | ORT integer | TVM build s fp32 / "
              "integer | TVM integer vs PyTorch: mismatched logits |", "|" + "---|" * 8]
    for r in results["runs"]:
        lat, t = r["latency_ms"], r["tvm"]
        lines.append(f"| {r['size']} | {lat['tvm_fp32']} | {lat['tvm_integer']} | "
                     f"{lat['tvm_integer'] / lat['tvm_fp32']:.2f} | {lat['ort_fp32']} | {lat['ort_integer']} | "
                     f"{t['fp32']['build_s']} / {t['integer']['build_s']} | "
                     f"{r['tvm_integer_mismatched_logits_vs_pytorch']} |")
    (OUT / "isegmenter.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, default=[64])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--aarch64", action="store_true", help="also build both for cortex-a76 and record the sizes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {"setup": f"{MODEL}, seeded random initialisation unless a demo checkpoint ships; calibration on "
                     f"shapes-task train images, fidelity on {HELD_OUT} held-out val images; TVM untuned "
                     f"(default pipeline), median of {args.iters} runs, 1 thread, host CPU (shared machine)",
                     "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-isegmenter-") as tmp:
        for size in args.sizes:
            results["runs"].append(bench_size(size, Path(tmp), args.iters, args.aarch64))
            _write(results)


if __name__ == "__main__":
    main()
