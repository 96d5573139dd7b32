"""``mvd quantize``: post-training quantization of a zoo model; writes q.json (the table every exporter reads),
fidelity.json and fidelity.png (per-point SQNR bars) into ``-o DIR``.

Calibration: ``--calib generated`` (default) takes images of the generated shapes task (train split, so disjoint
from the val images the fidelity report uses); ``--calib DIR`` reads an image folder. Every image goes through the
one preprocessing pipeline (``data.preprocess``); an image of another size is resized, with a warning.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import torch

from mobilevit_deploy.errors import DeployError

METHODS = ("uniform", "log2", "adalog", "sulq")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="post-training quantization (uniform, log2, AdaLog, SULQ) + fidelity report",
                       description=__doc__)
    p.add_argument("model", help="a name from `mvd models`")
    p.add_argument("--method", choices=METHODS, default="adalog")
    p.add_argument("--bits", default="w4a4", help="wXaY[sZ]: weight, activation and (optional) attention bits, "
                   "each one of 3, 4, 6, 8 (default w4a4; attention = activation bits)")
    p.add_argument("--calib", default="generated", help="`generated` (shapes task) or a folder of images")
    p.add_argument("--checkpoint", type=Path, help="official-format checkpoint (default: shipped demo checkpoint)")
    p.add_argument("--num-calib", type=int, default=32, help="calibration images (default 32)")
    p.add_argument("--num-eval", type=int, default=8, help="images for the fidelity report (default 8)")
    p.add_argument("--input-size", type=int, help="square input side (default: checkpoint's or model's)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.set_defaults(run=run)


def parse_bits(spec: str) -> dict[str, int]:
    m = re.fullmatch(r"w(\d)a(\d)(?:s(\d))?", spec.strip().lower())
    if not m:
        raise DeployError(f"--bits {spec!r} is not of the form wXaY or wXaYsZ", hint="e.g. --bits w4a4 or w8a8")
    w, a, s = int(m[1]), int(m[2]), int(m[3] or m[2])
    return {"weight_bits": w, "act_bits": a, "attn_bits": s}


def make_config(method: str, bits: dict[str, int]) -> Any:
    from mobilevit_deploy import quant

    cls = {"uniform": quant.UniformConfig, "log2": quant.Log2Config, "adalog": quant.AdaLogConfig,
           "sulq": quant.SULQConfig}[method]
    return cls(**bits)  # bad bits raise QuantConfigError (a DeployError)


def calibration_images(spec: str, count: int, pre: Any, log: Any) -> tuple[torch.Tensor, str]:
    """``count`` preprocessed images; wrong-size images are resized by ``pre`` and reported."""
    if count < 1:
        raise DeployError(f"--num-calib must be at least 1, got {count}")
    if spec == "generated":
        from mobilevit_deploy.data.generated import ShapesTask

        data: Any = ShapesTask(split="train", length=count)
    else:
        from mobilevit_deploy.data.image_folder import ImageFolder

        data = ImageFolder(Path(spec))
    n = min(count, len(data))
    images, resized = [], 0
    for i in range(n):
        img = data[i].image
        resized += tuple(img.shape[:2]) != tuple(pre.size)
        images.append(pre(img))
    if resized:
        log(f"[calib] warning: {resized} of {n} images were not {pre.size[0]}x{pre.size[1]} and were resized")
    return torch.cat(images), f"{data.describe()}, {n} images"


def run(args: argparse.Namespace) -> int:
    from mobilevit_deploy.checkpoints import default_checkpoint, demo_meta
    from mobilevit_deploy.data.generated import ShapesTask
    from mobilevit_deploy.data.preprocess import Preprocess
    from mobilevit_deploy.models import create_model
    from mobilevit_deploy.quant.api import quantize
    from mobilevit_deploy.quant.fidelity import fidelity

    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, flush=True)

    config = make_config(args.method, parse_bits(args.bits))
    checkpoint, meta = args.checkpoint, {}
    if checkpoint is None and (checkpoint := default_checkpoint(args.model)) is not None:
        meta = demo_meta(args.model)
        log(f"[checkpoint] using the shipped demo checkpoint {checkpoint}")
    model = create_model(args.model, checkpoint=checkpoint).eval()
    if checkpoint is None:
        log(f"[checkpoint] none given and none shipped: {args.model} has random weights")
    pre = Preprocess.for_model(args.model, args.input_size or meta.get("input_size"))
    calib, calib_desc = calibration_images(args.calib, args.num_calib, pre, log)
    log(f"[quantize] {args.model} {type(config).__name__} w{config.weight_bits}a{config.act_bits}"
        f"s{config.attn_bits} at {pre.size[0]}x{pre.size[1]}, calibration: {calib_desc}")

    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.time()
        if now - last[0] > 2 or done == total:
            last[0] = now
            log(f"[{stage}] {done}/{total}")

    q = quantize(model, config, calib, progress=progress)
    log(f"[quantize] {len(q.table)} points; calibration {q.timings['calibration_s']:.1f}s, "
        f"search {q.timings['search_s']:.1f}s")
    evalset = ShapesTask(split="val", length=args.num_eval)
    samples = [evalset[i] for i in range(args.num_eval)]
    images = torch.cat([pre(s.image) for s in samples])
    labels = torch.stack([torch.from_numpy(s.label).long() for s in samples])
    rep = fidelity(model, q.module, q.table, images, labels, num_classes=evalset.num_classes)
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    q.save_table(out / "q.json")
    rep.save(out / "fidelity.json", out / "fidelity.png")
    log(rep.summary())
    log(f"[quantize] wrote {out / 'q.json'}, {out / 'fidelity.json'}, {out / 'fidelity.png'}")
    return 0
