"""Time one runtime on one artifact in a process of its own, so each runtime gets exactly the threads it is given.

Why a subprocess: TVM reads ``TVM_NUM_THREADS`` once, ExecuTorch's XNNPACK captures its threadpool when a program is
loaded, and torch/ORT keep global pools; measuring them side by side in one process would leak one runtime's
threads into the next. The driver (``bench_runtimes.py``) starts one worker per (runtime, artifact, threads).

    python tools/bench/runtime_worker.py KIND ARTIFACT INPUTS.npy OUTPUTS.npy --threads N [--warmup 5] [--runs 25]

KIND: torch (ARTIFACT = ``model_name[:checkpoint]@size``), onnxruntime (.onnx), executorch (.pte), tvm (host .so),
gemm (ARTIFACT ignored: fp32 2048² matmul, the machine's GEMM rate). Times the first input; writes the outputs of
every input to OUTPUTS.npy; prints one JSON line ``{"times_ms": [...], ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Run = Callable[[np.ndarray], np.ndarray]
GEMM_N = 2048


def _torch(spec: str, threads: int) -> Run:
    import torch

    from mobilevit_deploy.models import create_model

    torch.set_num_threads(threads)
    name_ckpt, _, _size = spec.partition("@")
    name, _, ckpt = name_ckpt.partition(":")
    model = create_model(name, checkpoint=ckpt or None).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


def _onnxruntime(path: str, threads: int) -> Run:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _executorch(path: str, threads: int) -> Run:
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    torch.set_num_threads(1)  # the Python runtime copies outputs with torch; its OpenMP pool would steal a core

    from mobilevit_deploy.targets.executorch_target import load_executorch_host

    _unsafe_reset_threadpool(threads)  # before loading: XNNPACK captures the pool at load time
    return load_executorch_host(path)


def _tvm(path: str, threads: int) -> Run:
    if os.environ.get("TVM_NUM_THREADS") != str(threads):
        raise SystemExit("TVM_NUM_THREADS must be set by the caller (TVM reads it once at start-up)")
    from mobilevit_deploy.targets.tvm_target import load_tvm_host

    return load_tvm_host(path)


def _gemm(_: str, threads: int) -> Run:
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(GEMM_N, GEMM_N)
    b = torch.randn(GEMM_N, GEMM_N)
    return lambda _x: (a @ b)[:1, :1].numpy()


LOADERS: dict[str, Callable[[str, int], Run]] = {
    "torch": _torch, "onnxruntime": _onnxruntime, "executorch": _executorch, "tvm": _tvm, "gemm": _gemm}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=sorted(LOADERS))
    p.add_argument("artifact")
    p.add_argument("inputs", type=Path)
    p.add_argument("outputs", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=25)
    args = p.parse_args(argv)
    tick = time.perf_counter()
    run = LOADERS[args.kind](args.artifact, args.threads)
    load_s = time.perf_counter() - tick
    inputs = np.load(args.inputs)
    outputs = np.stack([run(np.ascontiguousarray(x[None]))[0] for x in inputs])
    first = np.ascontiguousarray(inputs[:1])
    for _ in range(args.warmup):
        run(first)
    times = []
    for _ in range(args.runs):
        tick = time.perf_counter()
        run(first)
        times.append((time.perf_counter() - tick) * 1e3)
    np.save(args.outputs, outputs)
    print(json.dumps({"kind": args.kind, "threads": args.threads, "load_s": load_s, "times_ms": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
