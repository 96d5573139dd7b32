"""Run libmvdseg through ctypes in a fresh process (the tests' ``run_native``).

Why a separate process: the test process has PyTorch, and often the ``tvm`` and ``executorch`` Python packages,
loaded; each carries its own copy of a runtime, and TVM's global registry must not exist twice in one process.
Here only numpy and ctypes are loaded next to libmvdseg.

    python app_backend_native.py LIBMVDSEG OPS.json   ->   one JSON result per op on stdout

Ops (arrays are .npy files): ``segment`` (bundle, frame, format rgba|nv21, width, height, out, threads,
colors), ``open`` (bundle, checksums), ``preprocess`` (frame, size, mean, std, out), ``resize`` / ``labels``
(logits, size, out), ``parallel`` (bundle, frame, handles, repeats, out): every handle in its own thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from mobilevit_deploy.targets.app_backend import ctypes_api as api


def _segment(lib: object, op: dict) -> dict:
    frame = np.load(op["frame"])
    with api.NativeSegmenter(lib, op["bundle"], num_threads=op.get("threads", 0),
                             verify_checksums=op.get("checksums", True)) as seg:
        if op.get("format", "rgba") == "nv21":
            res = seg.segment_nv21(frame, op["width"], op["height"], colors=op.get("colors", False))
        else:
            res = seg.segment_rgba(frame, colors=op.get("colors", False), stride=op.get("stride"),
                                   width=op.get("width"))
        classes = seg.num_classes
        names = [seg.class_name(0), seg.class_name(classes - 1), seg.class_name(classes)]
    np.save(op["out"], res.labels)
    if res.colors is not None:
        np.save(op["out"] + ".colors.npy", res.colors)
    return {"status": 0, "classes": classes, "names": names, "preprocess_ms": res.preprocess_ms,
            "inference_ms": res.inference_ms, "postprocess_ms": res.postprocess_ms}


def _parallel(lib: object, op: dict) -> dict:
    frame = np.load(op["frame"])
    seg = [api.NativeSegmenter(lib, op["bundle"]) for _ in range(op["handles"])]
    results: list[list[np.ndarray]] = [[] for _ in seg]
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            for _ in range(op["repeats"]):
                results[i].append(seg[i].segment_rgba(frame).labels)
        except api.NativeError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(seg))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in seg:
        s.close()
    if errors:
        return {"status": -1, "message": "; ".join(errors)}
    np.save(op["out"], np.stack([m for r in results for m in r]))
    return {"status": 0}


def _run(lib: object, op: dict) -> dict:
    kind = op["op"]
    if kind == "segment":
        return _segment(lib, op)
    if kind == "parallel":
        return _parallel(lib, op)
    if kind == "open":
        with api.NativeSegmenter(lib, op["bundle"], verify_checksums=op.get("checksums", True)) as seg:
            return {"status": 0, "classes": seg.num_classes, "input_size": list(seg.input_size)}
    if kind == "preprocess":
        x = api.preprocess_rgba(lib, np.load(op["frame"]), tuple(op["size"]), op["mean"], op["std"])
        np.save(op["out"], x)
    elif kind in ("resize", "labels"):
        fn = api.resize_logits if kind == "resize" else api.logits_to_labels
        np.save(op["out"], fn(lib, np.load(op["logits"]), tuple(op["size"])))
    else:
        raise ValueError(f"unknown op {kind}")
    return {"status": 0}


def main(argv: list[str]) -> int:
    lib = api.load_library(argv[1])
    for op in json.loads(Path(argv[2]).read_text()):
        try:
            result = _run(lib, op)
        except api.NativeError as err:
            result = {"status": err.status, "name": err.name, "message": err.message}
        print(json.dumps(result), flush=True)
    return 0


def run_native(library: Path, ops: list[dict], work: Path, timeout: float = 300) -> list[dict]:
    """Run ``ops`` against ``library`` in a fresh process; one result dict per op."""
    request = work / "ops.json"
    request.write_text(json.dumps(ops))
    proc = subprocess.run([sys.executable, __file__, str(library), str(request)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"native helper failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
