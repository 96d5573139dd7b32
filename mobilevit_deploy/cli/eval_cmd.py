"""``mvd eval``: score a zoo model, an ONNX file or a bundle on labelled data (mIoU), or agreement with a reference.

The model runs through the one preprocessing pipeline (``data.preprocess``); logits are resized to each label's
size before the argmax, as mmseg evaluates. Zoo models without ``--checkpoint`` use the shipped demo checkpoint
when there is one (and say so). Results go to a JSON file, written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.data import DataError, Preprocess, open_dataset
from mobilevit_deploy.data.preprocess import logits_to_label
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.metrics import ConfusionMatrix

Predict = Callable[[torch.Tensor], np.ndarray]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model, ONNX file or bundle on a dataset (mIoU)", description=__doc__)
    p.add_argument("model", help="a name from `mvd models`, an .onnx file, or a bundle folder")
    p.add_argument("--data", required=True,
                   help="an ADE20K folder (images/, annotations/), a folder of images (with --reference), "
                   "or `shapes[:split]` for the generated task")
    p.add_argument("--split", help="ADE20K: training|validation (default validation); shapes: train|val|test")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--checkpoint", type=Path, help="zoo models: official-format checkpoint (default: shipped demo)")
    p.add_argument("--input-size", type=int, help="zoo models: square input side (default: checkpoint's or model's)")
    p.add_argument("--reference", help="a second model/ONNX/bundle: also report agreement mIoU with its predictions "
                   "(needs no labels)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch / ONNX Runtime (default 1)")
    p.add_argument("-o", "--output", type=Path, help="results JSON (default: eval-<model>.json)")
    p.add_argument("--json", action="store_true", help="print the results JSON to stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit < 1:
        raise DeployError(f"--limit must be at least 1, got {args.limit}")
    dataset = open_dataset(args.data, args.split)  # bad data fails before any model is loaded
    model_desc, predict, pre, model_meta = load_predictor(args.model, args.checkpoint, args.input_size, args.threads)
    reference = load_predictor(args.reference, None, None, args.threads)[:3] if args.reference else None
    labelled = dataset.num_classes is not None
    if not labelled and reference is None:
        raise DataError(f"{dataset.describe()}: nothing to score against",
                        hint="pass --reference MODEL to measure agreement, or a labelled dataset")
    count = min(len(dataset), args.limit or len(dataset))
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    log(f"[eval] {model_desc} on {dataset.describe()}, {count} images")
    results = _score(dataset, count, predict, pre, reference, log)
    report: dict[str, Any] = {"model": model_desc, **model_meta, "data": dataset.describe(), "images": count,
                              "preprocess": pre.metadata(), **results}
    out = args.output or Path(f"eval-{Path(args.model).stem}.json")
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    if "mIoU" in report:
        log(f"[eval] mIoU {report['mIoU']:.4f}  mAcc {report['mAcc']:.4f}  aAcc {report['aAcc']:.4f} "
            f"({report['classes_scored']} classes scored)")
    if "agreement_mIoU" in report:
        log(f"[eval] agreement with {args.reference}: mIoU {report['agreement_mIoU']:.4f}, "
            f"pixels {report['agreement_pixels']:.4f}")
    log(f"[eval] wrote {out}")
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


def _score(dataset: Any, count: int, predict: Predict, pre: Preprocess,
           reference: tuple[str, Predict, Preprocess] | None, log: Callable[[str], None]) -> dict[str, Any]:
    labelled = dataset.num_classes is not None
    cm = ConfusionMatrix(dataset.num_classes) if labelled else None
    agree: ConfusionMatrix | None = None
    start, last = time.time(), 0.0
    for i in range(count):
        sample = dataset[i]
        size = sample.image.shape[:2]
        pred = logits_to_label(predict(pre(sample.image)), size)[0]
        if cm is not None:
            cm.update(pred, sample.label)
        if reference is not None:
            _, ref_predict, ref_pre = reference
            logits = ref_predict(ref_pre(sample.image))
            agree = agree or ConfusionMatrix(int(logits.shape[1]), ignore_index=-1)
            agree.update(pred, logits_to_label(logits, size)[0])
        now = time.time()
        if now - last > 5 or i + 1 == count:
            last = now
            running = f", running mIoU {cm.result().miou:.4f}" if cm is not None else ""
            log(f"[eval] {i + 1}/{count} images{running}, {(i + 1) / (now - start):.2f} img/s")
    out: dict[str, Any] = {"seconds": round(time.time() - start, 2)}
    if cm is not None:
        out.update(cm.result(getattr(dataset, "class_names", None)).to_dict())
    if agree is not None:
        res = agree.result()
        out.update({"agreement_mIoU": round(res.miou, 6), "agreement_pixels": round(res.pixel_acc, 6)})
    return out


def load_predictor(spec: str, checkpoint: Path | None, input_size: int | None, threads: int
                   ) -> tuple[str, Predict, Preprocess, dict[str, Any]]:
    """A description, a logits function, the preprocessing and facts of a zoo name, an ONNX file or a bundle.

    A reference zoo model gets no ``--checkpoint``/``--input-size`` of the main one: it uses its own defaults."""
    path = Path(spec)
    if path.suffix == ".onnx":
        return onnx_predictor(path, threads)
    if path.is_dir():
        return bundle_predictor(path)
    return torch_predictor(spec, checkpoint, input_size)


def torch_predictor(name: str, checkpoint: Path | None, input_size: int | None
                    ) -> tuple[str, Predict, Preprocess, dict[str, Any]]:
    from mobilevit_deploy.checkpoints import default_checkpoint, demo_meta
    from mobilevit_deploy.models import create_model

    meta: dict[str, Any] = {}
    if checkpoint is None and (checkpoint := default_checkpoint(name)) is not None:
        meta = demo_meta(name)
        print(f"[checkpoint] no --checkpoint given: using the shipped demo checkpoint {checkpoint} "
              f"(trained on the generated shapes task at {meta.get('input_size')}², "
              f"held-out mIoU {meta.get('val_mIoU')})", file=sys.stderr, flush=True)
    model = create_model(name, checkpoint=checkpoint)
    if checkpoint is None:
        print(f"[checkpoint] none given and none shipped: {name} has random weights", file=sys.stderr, flush=True)
    pre = Preprocess.for_model(name, input_size or meta.get("input_size"))

    def predict(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    return name, predict, pre, {"checkpoint": str(checkpoint) if checkpoint else None, "runtime": "pytorch"}


def onnx_predictor(path: Path, threads: int) -> tuple[str, Predict, Preprocess, dict[str, Any]]:
    """ONNX Runtime on the host; the input size comes from the graph, normalisation is ImageNet's (zoo models)."""
    import onnxruntime as ort

    if not path.is_file():
        raise DeployError(f"ONNX file not found: {path}", hint="check the path, or export one with `mvd export`")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for unreadable models
        raise DeployError(f"{path} is not a loadable ONNX model ({str(err).splitlines()[0][:120]})") from None
    inp = session.get_inputs()[0]
    height, width = inp.shape[2], inp.shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise DeployError(f"{path} has a dynamic input shape {inp.shape}", hint="export with a fixed --input-size")
    pre = Preprocess((height, width))

    def predict(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {inp.name: x.numpy()})[0]

    return str(path), predict, pre, {"runtime": "onnxruntime"}


def bundle_predictor(path: Path) -> tuple[str, Predict, Preprocess, dict[str, Any]]:
    """A bundle runs through its own runner where it belongs (host, or aarch64 under qemu), one image per call."""
    from mobilevit_deploy.bundle import load_bundle
    from mobilevit_deploy.bundle.verify import run_bundle_locally

    bundle = load_bundle(path)
    spec = bundle.metadata["input"]
    resize = spec.get("resize", {})
    height, width = resize.get("height", spec["shape"][2]), resize.get("width", spec["shape"][3])
    pre = Preprocess((height, width), tuple(spec["mean"]), tuple(spec["std"]))
    def predict(x: torch.Tensor) -> np.ndarray:
        return run_bundle_locally(bundle, x.numpy())[0]

    return str(path), predict, pre, {"runtime": bundle.runtime, "arch": bundle.arch}
