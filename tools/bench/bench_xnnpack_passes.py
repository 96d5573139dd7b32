"""ExecuTorch latency with and without the XNNPACK rewrites of ``targets/executorch_passes.py`` (issue 11, item 3).

Each model is lowered twice at the given size (through the artifact cache): the plain pipeline (``torch.export`` →
``to_edge_transform_and_lower`` with the ``XnnpackPartitioner``, as before the rewrites) and ``build_executorch``
(the same plus the rewrites). Both ``.pte`` files are timed with ExecuTorch's Python runtime in one worker process
per thread count (threadpool set before loading; ``runtime_worker.py`` explains why), runs interleaved
plain/rewritten so both see the same machine load. Per run the worker records wall time and the process's CPU
time: on a shared machine the 1-thread CPU time is the figure other jobs disturb least. Reports min, 10th
percentile and median, the delegated subgraph counts, and each program's relative max diff against PyTorch.
Writes ``tools/bench/results/xnnpack_passes.{json,md}``.

    python tools/bench/bench_xnnpack_passes.py [--models topformer_tiny,casvit_xs] [--size N] [--threads 1,2]

TopFormer-T at 512²: about 3 minutes on a lightly loaded 2-core machine, mostly the two lowerings (then cached).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilevit_deploy.artifact_cache import cached_build, model_fingerprint
from mobilevit_deploy.export.verify import compare_outputs, seeded_image_batch
from mobilevit_deploy.models import create_model, model_info
from mobilevit_deploy.quiet import quiet
from mobilevit_deploy.targets.executorch_passes import lowering_digest
from mobilevit_deploy.targets.executorch_target import build_executorch, delegation_report

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("plain", "rewritten")


def build_plain(model: torch.nn.Module, size: int, dest: Path) -> dict[str, Any]:
    """The lowering as it was before the rewrites; returns its delegation report."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with quiet("torch.export", "torch._export", "executorch", "torchao"):
        program = torch.export.export(model, (torch.zeros(1, 3, size, size),), strict=False)
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        report = delegation_report(edge.exported_program().graph_module)
        dest.write_bytes(edge.to_executorch().buffer)
    return report


def worker(threads: int, inputs: Path, ptes: list[Path], warmup: int, runs: int) -> None:
    """In its own process: load every program on a ``threads`` pool, run them interleaved, print ms per run."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    from mobilevit_deploy.targets.executorch_target import load_executorch_host

    # ExecuTorch's pybindings copy outputs with ATen: a large output (TopFormer's 150×64×64 logits) wakes torch's
    # OpenMP pool, whose spinning worker took ~8 ms CPU per run here and a core away from a 2-thread XNNPACK pool.
    torch.set_num_threads(1)
    _unsafe_reset_threadpool(threads)  # before loading: XNNPACK captures the pool at load time
    programs = [load_executorch_host(pte) for pte in ptes]
    x = np.load(inputs)
    for pte, run in zip(ptes, programs, strict=True):
        np.save(pte.with_suffix(".out.npy"), run(x))
        for _ in range(warmup):
            run(x)
    times: list[dict[str, list[float]]] = [{"wall_ms": [], "cpu_ms": []} for _ in ptes]
    for i in range(runs):
        order = range(len(ptes)) if i % 2 == 0 else reversed(range(len(ptes)))
        for k in order:
            tick, cpu_tick = time.perf_counter(), time.process_time()
            programs[k](x)
            times[k]["wall_ms"].append((time.perf_counter() - tick) * 1e3)
            times[k]["cpu_ms"].append((time.process_time() - cpu_tick) * 1e3)
    print(json.dumps(times))


def _stats(samples: list[float]) -> dict[str, float]:
    return {"min_ms": min(samples), "p10_ms": float(np.percentile(samples, 10)),
            "median_ms": float(np.median(samples))}


def measure(name: str, size: int, threads: list[int], args: argparse.Namespace, work: Path) -> dict:
    model = create_model(name)
    x = seeded_image_batch(size)
    inputs = work / f"{name}-input.npy"
    np.save(inputs, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    row: dict[str, Any] = {"model": name, "input_size": size, "variants": {}}
    ptes = [work / f"{name}-{variant}.pte" for variant in VARIANTS]
    parts = {"model": model_fingerprint(model), "input_size": size}
    builds = {"plain": lambda dest: build_plain(model, size, dest),
              "rewritten": lambda dest: build_executorch(model, size, dest).report["delegation"]}
    for variant, pte in zip(VARIANTS, ptes, strict=True):
        tick = time.perf_counter()
        lowering = "plain" if variant == "plain" else lowering_digest()
        report, hit = cached_build("executorch", {**parts, "lowering": lowering}, pte, builds[variant])
        row["variants"][variant] = {"build_s": None if hit else time.perf_counter() - tick,
                                    "subgraphs": report["delegated_subgraphs"],
                                    "non_delegated": report["non_delegated"]}
    for n in threads:
        done = subprocess.run([sys.executable, __file__, "--worker", str(n), str(inputs), *map(str, ptes),
                               "--warmup", str(args.warmup), "--runs", str(args.runs)],
                              capture_output=True, text=True, check=True)
        times = json.loads(done.stdout.strip().splitlines()[-1])
        for variant, pte, kinds in zip(VARIANTS, ptes, times, strict=True):
            v = row["variants"][variant]
            v[f"{n}t"] = {kind: _stats(samples) for kind, samples in kinds.items()}
            v["rel_max_diff"] = compare_outputs(np.load(pte.with_suffix(".out.npy")), ref).rel_max_diff
        print(f"{name} {size}² {n} thread(s): " + ", ".join(
            f"{variant} CPU min {v[f'{n}t']['cpu_ms']['min_ms']:.2f} / wall p10 {v[f'{n}t']['wall_ms']['p10_ms']:.2f}"
            " ms" for variant, v in row["variants"].items()), flush=True)
    return row


def markdown(rows: list[dict], threads: list[int]) -> str:
    head = "| model | size | variant | subgraphs | outside XNNPACK | " + " | ".join(
        f"{n}T CPU min / p10 ms | {n}T wall min / p10 / median ms" for n in threads) + " | rel max diff |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        for variant, v in row["variants"].items():
            outside = ", ".join(f"{op.split('.')[1]} ×{c}" for op, c in v["non_delegated"].items()) or "–"
            cells = []
            for n in threads:
                cpu, wall = v[f"{n}t"]["cpu_ms"], v[f"{n}t"]["wall_ms"]
                cells.append(f"{cpu['min_ms']:.1f} / {cpu['p10_ms']:.1f} | "
                             f"{wall['min_ms']:.1f} / {wall['p10_ms']:.1f} / {wall['median_ms']:.1f}")
            lines.append(f"| {row['model']} | {row['input_size']} | {variant} | {v['subgraphs']} | {outside} | "
                         f"{' | '.join(cells)} | {v['rel_max_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="topformer_tiny")
    p.add_argument("--size", type=int, default=None, help="input size (default: each model's own)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=100, help="timed runs per program and thread count")
    p.add_argument("--worker", nargs="+", metavar="THREADS INPUT PTE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        threads, inputs, *ptes = args.worker
        worker(int(threads), Path(inputs), [Path(pte) for pte in ptes], args.warmup, args.runs)
        return 0
    threads = [int(n) for n in args.threads.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-xnnpack-passes-") as tmp:
        rows = [measure(name, args.size or model_info(name).default_input_size, threads, args, Path(tmp))
                for name in args.models.split(",")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "xnnpack_passes.json").write_text(json.dumps(rows, indent=1))
    table = markdown(rows, threads)
    (RESULTS / "xnnpack_passes.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
