"""What libmvdseg adds around the model: its own pre- and post-processing time per 1080p camera frame on the host,
next to the model's inference time (inside the library, and in the C++ runner alone).

For each input size: compile TopFormer-T (shipped demo checkpoint; 150-class head) to an ExecuTorch host bundle
(artifact cache reused), build the host app backend, then segment the repository's photo scaled to 1920x1080 as
RGBA and as NV21, with and without the colour overlay, in a fresh process (ctypes only). Writes
``tools/bench/results/app_backend.json`` and a markdown table next to it.

    .venv/bin/python tools/bench/bench_app_backend.py [--sizes 256,512] [--iters 10] [--threads 1,2]

About 3 minutes per new input size on the 2-core machine (most of it the ExecuTorch lowering); numbers from a
shared machine are indicative, not a phone's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
PHOTO = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos" / "china.jpg"
FRAME = (1080, 1920)


def worker(library: str, bundle: str, frames: str, iters: int, threads: int) -> dict:
    """In a process with only numpy + ctypes: time every stage of mvd_segment_* for each frame variant."""
    from mobilevit_deploy.targets.app_backend.ctypes_api import NativeSegmenter, load_library

    data = np.load(frames)
    h, w = FRAME
    out: dict = {}
    with NativeSegmenter(load_library(library), bundle, num_threads=threads) as seg:
        for fmt in ("rgba", "nv21"):
            for colors in (False, True):
                calls = []
                for i in range(iters + 2):
                    if fmt == "rgba":
                        res = seg.segment_rgba(data["rgba"], colors=colors)
                    else:
                        res = seg.segment_nv21(data["nv21"], w, h, colors=colors)
                    if i >= 2:  # two warm-up calls
                        calls.append((res.preprocess_ms, res.inference_ms, res.postprocess_ms))
                stages = {name: [c[k] for c in calls] for k, name in enumerate(("pre", "inference", "post"))}
                out[f"{fmt}{'+colors' if colors else ''}"] = {
                    f"{name}_ms_median": round(statistics.median(v), 3) for name, v in stages.items()
                } | {f"{name}_ms_min": round(min(v), 3) for name, v in stages.items()}
    return out


def _frames(path: Path) -> None:
    from PIL import Image

    from mobilevit_deploy.targets.app_backend.frames import rgb_to_nv21, rgb_to_rgba

    with Image.open(PHOTO) as img:
        rgb = np.asarray(img.convert("RGB").resize((FRAME[1], FRAME[0]), Image.BILINEAR))
    np.savez(path, rgba=rgb_to_rgba(rgb), nv21=rgb_to_nv21(rgb))


def _runner_ms(bundle: Path, iters: int, threads: int) -> float:
    """The model alone: the bundle's C++ runner on its reference input, median per iteration."""
    from mobilevit_deploy.bundle import load_bundle
    from mobilevit_deploy.bundle.verify import run_bundle_locally

    b = load_bundle(bundle)
    _, result, _ = run_bundle_locally(b, b.reference()[0], warmup=2, iters=iters, threads=threads)
    return round(result.median_us / 1000, 3)


def measure(size: int, iters: int, threads: list[int], work: Path) -> list[dict]:
    from mobilevit_deploy.checkpoints import default_checkpoint
    from mobilevit_deploy.compile import compile_bundle
    from mobilevit_deploy.targets.app_backend import build_app_library

    bundle = compile_bundle("topformer_tiny", "executorch", work / f"bundle{size}", arch="host", input_size=size,
                            checkpoint=default_checkpoint("topformer_tiny")).bundle
    library = build_app_library("executorch", "host").library
    frames = work / "frames.npz"
    if not frames.exists():
        _frames(frames)
    rows = []
    for t in threads:
        proc = subprocess.run([sys.executable, __file__, "--worker", str(library), str(bundle), str(frames),
                               str(iters), str(t)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        timings = json.loads(proc.stdout.strip().splitlines()[-1])
        runner = _runner_ms(bundle, iters, t)
        for variant, row in timings.items():
            rows.append({"model": "topformer_tiny", "input_size": size, "classes": 150,
                         "frame": f"{FRAME[1]}x{FRAME[0]}", "format": variant, "threads": t, **row,
                         "runner_inference_ms_median": runner})
        print(f"[bench] {size}² threads {t}: {timings['rgba']} (runner {runner} ms)", flush=True)
    return rows


def write(rows: list[dict], iters: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core host",
            "iters": iters, "frame": "tests/data/photos/china.jpg scaled to 1920x1080"}
    (RESULTS / "app_backend.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# App backend: libmvdseg's own work per 1080p frame (host)", "",
        f"{meta['frame']}; TopFormer-T demo checkpoint (150-class head, 24 trained), ExecuTorch XNNPACK fp32; "
        f"median of {iters} calls after 2 warm-ups. *pre* = colour conversion + resize + normalise, *post* = "
        "bilinear logits upsampling to 1920x1080 + argmax (+ palette colours), both exactly as the Python pipeline "
        "computes them. *runner* = the C++ runner timing the same model alone.", "",
        "| input | threads | frame | pre ms | inference ms | post ms | runner inference ms | pre+post share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        total = r["pre_ms_median"] + r["inference_ms_median"] + r["post_ms_median"]
        share = (r["pre_ms_median"] + r["post_ms_median"]) / total
        lines.append(f"| {r['input_size']}² | {r['threads']} | {r['format']} | {r['pre_ms_median']} | "
                     f"{r['inference_ms_median']} | {r['post_ms_median']} | {r['runner_inference_ms_median']} | "
                     f"{share:.0%} |")
    (RESULTS / "app_backend.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512", help="comma-separated square input sizes")
    p.add_argument("--iters", type=int, default=10, help="timed calls per variant")
    p.add_argument("--threads", default="1,2", help="comma-separated runtime thread counts")
    p.add_argument("--worker", nargs=5, metavar=("LIB", "BUNDLE", "FRAMES", "ITERS", "THREADS"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        lib, bundle, frames, iters, threads = args.worker
        print(json.dumps(worker(lib, bundle, frames, int(iters), int(threads))))
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mvd-bench-app-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows += measure(size, args.iters, [int(t) for t in args.threads.split(",")], Path(tmp))
    write(rows, args.iters)
    print(f"[bench] wrote {RESULTS / 'app_backend.json'} and app_backend.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
