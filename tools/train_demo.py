"""Train a demo checkpoint on the generated shapes task, on CPU, seeded: the package's built-in default weights.

Why: no dataset or checkpoint can be downloaded here, yet quantizers must be compared on a model that has
learned something. The model keeps its official 150-class head (so the checkpoint drops into every consumer
with ``create_model(name, checkpoint=...)`` strictly); the task uses the first 28 of those ids.

Rerun (each process uses one thread; the two demo models can train side by side on two cores)::

    python tools/train_demo.py topformer_tiny
    python tools/train_demo.py casvit_xs_seg --half

Training follows mmseg's recipe in miniature: AdamW, linear warmup then poly LR decay, cross-entropy with
``ignore_index=255`` on logits upsampled bilinearly to the label grid. Training data are fresh generated images
every step (train split); the held-out score uses the val split. The checkpoint is written atomically as
``{'meta': {...}, 'state_dict': ...}`` with the model's own (official) key names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mobilevit_deploy.checkpoints import CHECKPOINT_DIR, checkpoint_filename
from mobilevit_deploy.data.generated import IGNORE_INDEX, NUM_CLASSES, ShapesTask, class_names, generate
from mobilevit_deploy.data.preprocess import Preprocess
from mobilevit_deploy.metrics import evaluate
from mobilevit_deploy.models import create_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="topformer_tiny or casvit_xs_seg (any segmenter works)")
    p.add_argument("--size", type=int, default=256, help="square training/eval size (default 256)")
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--loss-stride", type=int, default=2,
                   help="labels are subsampled by this for the loss (speed on CPU); eval is at full size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--half", action="store_true", help="store float tensors as fp16 (half the file size)")
    p.add_argument("-o", "--output", type=Path, help="default: mobilevit_deploy/checkpoints/<model>_shapes.pth")
    return p.parse_args(argv)


def batch_at(step: int, batch: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The step's training images: train-split indices step*batch .. step*batch+batch-1 (never repeated)."""
    pairs = [generate(seed, "train", step * batch + j, size) for j in range(batch)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (0.1 + 0.9 * step / args.warmup)
    return args.lr * (1 - (step - args.warmup) / max(1, args.iters - args.warmup)) ** 1.0 + 1e-6


def held_out(model: torch.nn.Module, args: argparse.Namespace) -> dict:
    model.eval()
    task = ShapesTask(seed=args.seed, split="val", length=args.val_images, size=args.size)
    pre = Preprocess.for_model(args.model, args.size)
    with torch.inference_mode():
        result = evaluate(model, task, pre, NUM_CLASSES, IGNORE_INDEX, class_names=class_names())
    return {"val_mIoU": round(result.miou, 4), "val_aAcc": round(result.pixel_acc, 4), "val_images": len(task),
            "val_per_class_IoU": result.to_dict()["per_class_IoU"]}


def save_atomic(model: torch.nn.Module, meta: dict, path: Path, half: bool) -> None:
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"meta": meta, "state_dict": state}, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    meta: dict = {"task": "shapes (mobilevit_deploy.data.generated)", "task_classes": NUM_CLASSES,
                  "model": args.model, "input_size": args.size, "iters": args.iters, "batch": args.batch,
                  "lr": args.lr, "weight_decay": args.weight_decay, "warmup": args.warmup,
                  "loss_stride": args.loss_stride, "seed": args.seed, "dtype": "float16" if args.half else "float32",
                  "torch": str(torch.__version__), "command": "python tools/train_demo.py " + " ".join(sys.argv[1:])}
    torch.manual_seed(args.seed)
    model = create_model(args.model).train()
    meta.update(_train_model(model, args))
    if args.half:  # score exactly the weights that are shipped
        model.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                               for k, v in model.state_dict().items()})
    meta.update(held_out(model, args))
    print(f"[eval] {args.model} held-out mIoU {meta['val_mIoU']:.4f} aAcc {meta['val_aAcc']:.4f} "
          f"on {meta['val_images']} val images", flush=True)
    out = args.output or CHECKPOINT_DIR / checkpoint_filename(args.model)
    save_atomic(model, meta, out, args.half)
    sidecar = out.with_suffix(".json")
    sidecar.with_name(sidecar.name + ".tmp").write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(sidecar.with_name(sidecar.name + ".tmp"), sidecar)
    print(f"[save] wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0


def _train_model(model: torch.nn.Module, args: argparse.Namespace) -> dict:
    pre = Preprocess.for_model(args.model, args.size)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    start, running = time.time(), None
    for step in range(args.iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        images, labels = batch_at(step, args.batch, args.size, args.seed)
        target = torch.from_numpy(labels[:, :: args.loss_stride, :: args.loss_stride].astype(np.int64))
        logits = F.interpolate(model(pre(list(images))), size=target.shape[-2:], mode="bilinear",
                               align_corners=False)
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % 10 == 0 or step == args.iters - 1:
            elapsed = time.time() - start
            eta = elapsed / (step + 1) * (args.iters - step - 1)
            print(f"[train] {args.model} step {step + 1}/{args.iters} loss {running:.3f} "
                  f"lr {lr_at(step, args):.2e} {elapsed:.0f}s elapsed, eta {eta:.0f}s", flush=True)
    return {"train_seconds": round(time.time() - start, 1)}


if __name__ == "__main__":
    sys.exit(main())
