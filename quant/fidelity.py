"""Fidelity report (issue 7 item 5): how far the fake-quant model is from FP32, point by point and end to end.

* per point: SQNR of the point's tensor, ``fake_quantize(x)`` vs ``x`` with x the FP tensor at that point (weights,
  layer inputs, attention probabilities, post-GELU maps) on the report images — each point's own noise, not
  accumulated upstream error;
* end to end: SQNR of the logits, and agreement mIoU of the argmax maps (FP32 as the reference), compared at logit
  resolution (both models share it, so no upsampling is needed);
* mIoU against labels when given (logits upsampled bilinearly to the label size, then argmax, as mmseg).
``agreement_miou`` / ``label_miou`` score with ``mobilevit_deploy.metrics`` (mmseg's definitions, no data layer).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.metrics import agreement, mean_iou

from .fake_quant import fake_quantize
from .metrics import sqnr_db
from .png import bar_chart, write_png
from .table import QuantTable, TensorRole


def agreement_miou(pred: torch.Tensor, ref: torch.Tensor, num_classes: int) -> float:
    """mIoU of one argmax map against another (the reference plays the labels; classes absent from both skipped)."""
    return agreement(ref.numpy(), pred.numpy(), num_classes).miou


def label_miou(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255) -> float:
    """mmseg-style mIoU: logits upsampled to the label size, argmax, classes absent from labels and preds skipped."""
    up = F.interpolate(logits.float(), size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
    return mean_iou(up.argmax(1).numpy(), labels.numpy(), num_classes, ignore_index).miou


@dataclass
class FidelityReport:
    points: list[dict[str, Any]] = field(default_factory=list)
    end_to_end_sqnr_db: float = math.nan
    agreement_miou: float = math.nan
    pixel_agreement: float = math.nan
    fp32_miou: float | None = None
    quant_miou: float | None = None
    images: int = 0

    def to_json(self) -> dict[str, Any]:
        def num(v: float | None) -> float | str | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else \
                (str(v) if isinstance(v, float) and math.isinf(v) else round(v, 4))
        return {"images": self.images, "end_to_end_sqnr_db": num(self.end_to_end_sqnr_db),
                "agreement_mIoU": num(self.agreement_miou), "pixel_agreement": num(self.pixel_agreement),
                "fp32_mIoU": num(self.fp32_miou), "quant_mIoU": num(self.quant_miou),
                "points": [{**p, "sqnr_db": num(p["sqnr_db"])} for p in self.points]}

    def save(self, json_path: str | Path, png_path: str | Path | None = None) -> None:
        with atomic_path(Path(json_path)) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        if png_path is not None:
            kinds = sorted({p["kind"] for p in self.points})
            write_png(png_path, bar_chart([p["sqnr_db"] for p in self.points],
                                          [kinds.index(p["kind"]) for p in self.points]))

    def summary(self, worst: int = 8) -> str:
        """Terminal table: end-to-end numbers, then the ``worst`` points by SQNR."""
        lines = [f"end-to-end SQNR {self.end_to_end_sqnr_db:6.2f} dB   agreement mIoU {self.agreement_miou:.4f}   "
                 f"pixel agreement {self.pixel_agreement:.4f}   ({self.images} images)"]
        if self.quant_miou is not None:
            lines.append(f"mIoU vs labels: FP32 {self.fp32_miou:.4f}  quantized {self.quant_miou:.4f}")
        lines.append(f"{'point':<58} {'kind':<12} {'bits':>4} {'SQNR dB':>8}")
        for p in sorted(self.points, key=lambda p: p["sqnr_db"])[:worst]:
            name = f"{p['module']}:{p['role']}[{p['input_index']}]"
            lines.append(f"{name[-58:]:<58} {p['kind']:<12} {p['bits']:>4} {p['sqnr_db']:8.2f}")
        return "\n".join(lines)


def _point_tensors(model: nn.Module, table: QuantTable, images: torch.Tensor) -> dict[tuple, torch.Tensor]:
    """FP tensors at every activation point (inputs of the table's modules in the float model)."""
    wanted: dict[str, list] = {}
    for p in table:
        if p.role is not TensorRole.WEIGHT:
            wanted.setdefault(p.module, []).append(p)
    found: dict[tuple, torch.Tensor] = {}
    handles = []
    for path, pts in wanted.items():
        def hook(_m: nn.Module, inputs: tuple, pts: list = pts) -> None:
            for p in pts:
                found[p.key] = inputs[p.input_index].detach()
        handles.append(model.get_submodule(path).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return found


def fidelity(fp_model: nn.Module, quant_model: nn.Module, table: QuantTable, images: torch.Tensor,
             labels: torch.Tensor | None = None, *, num_classes: int | None = None,
             ignore_index: int = 255) -> FidelityReport:
    """Compare ``quant_model`` (fake-quant, built from ``table``) with ``fp_model`` on ``images``."""
    fp_model, quant_model = fp_model.eval(), quant_model.eval()
    with torch.no_grad():
        ref, out = fp_model(images), quant_model(images)
    acts = _point_tensors(fp_model, table, images)
    rows = []
    for p in table:
        x = fp_model.get_submodule(p.module).weight.detach() if p.role is TensorRole.WEIGHT else acts.get(p.key)
        s = sqnr_db(x, fake_quantize(x, p, fold=False)) if x is not None else math.nan
        rows.append({"module": p.module, "role": p.role.value, "input_index": p.input_index, "kind": p.kind.value,
                     "bits": p.bits, "sqnr_db": s})
    n = num_classes or int(ref.shape[1])
    rep = FidelityReport(points=rows, end_to_end_sqnr_db=sqnr_db(ref, out), images=int(images.shape[0]),
                         agreement_miou=agreement_miou(out.argmax(1), ref.argmax(1), int(ref.shape[1])),
                         pixel_agreement=float((out.argmax(1) == ref.argmax(1)).float().mean()))
    if labels is not None:
        rep.fp32_miou = label_miou(ref, labels, n, ignore_index)
        rep.quant_miou = label_miou(out, labels, n, ignore_index)
    return rep
