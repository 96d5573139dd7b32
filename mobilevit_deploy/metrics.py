"""Segmentation metrics as mmseg computes them: a confusion matrix accumulated over the dataset, then IoU per class.

A class absent from both the labels and the predictions has no IoU (NaN) and is left out of the mean, exactly as
mmseg's ``nanmean``. Predicted ids outside ``0..num_classes-1`` (a 150-way model on a smaller task) count as wrong
for the true class and as nobody's prediction, like mmseg's ``histc``. ``agreement`` scores one model's
predictions against another's (no labels needed) to check that a quantized or compiled model still agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # the data layer imports the models; the scores above need neither (quant uses them)
    from mobilevit_deploy.data.preprocess import Preprocess
    from mobilevit_deploy.data.sample import Sample


@dataclass
class SegResult:
    """Dataset-level scores; ``iou``/``acc`` are per class (NaN where the class is absent from labels and preds)."""

    miou: float
    macc: float
    pixel_acc: float
    iou: np.ndarray
    acc: np.ndarray
    pixels: int
    class_names: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        names = self.class_names or [str(i) for i in range(len(self.iou))]
        per_class = {n: (None if np.isnan(v) else round(float(v), 6)) for n, v in zip(names, self.iou, strict=True)}
        return {"mIoU": round(self.miou, 6), "mAcc": round(self.macc, 6), "aAcc": round(self.pixel_acc, 6),
                "pixels": self.pixels, "classes_scored": int(np.sum(~np.isnan(self.iou))), "per_class_IoU": per_class}


@dataclass
class ConfusionMatrix:
    """Accumulates (label, prediction) pixel counts; one extra column collects predictions outside the classes."""

    num_classes: int
    ignore_index: int = 255
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes + 1), np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one image (or a batch): ``pred`` and ``label`` are integer maps of the same shape."""
        pred, label = np.asarray(pred), np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"prediction shape {pred.shape} != label shape {label.shape}")
        keep = label != self.ignore_index
        lab = label[keep].astype(np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= self.num_classes):
            raise ValueError(f"label ids must be in 0..{self.num_classes - 1} or {self.ignore_index}")
        prd = pred[keep].astype(np.int64)
        prd = np.where((prd >= 0) & (prd < self.num_classes), prd, self.num_classes)
        k = self.num_classes + 1
        self.matrix += np.bincount(lab * k + prd, minlength=self.num_classes * k).reshape(self.num_classes, k)

    def result(self, class_names: list[str] | None = None) -> SegResult:
        m = self.matrix.astype(np.float64)
        intersect = np.diag(m[:, : self.num_classes])
        area_label = m.sum(1)
        area_pred = m[:, : self.num_classes].sum(0)
        union = area_label + area_pred - intersect
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, intersect / union, np.nan)
            acc = np.where(area_label > 0, intersect / area_label, np.nan)
        total = area_label.sum()
        return SegResult(
            miou=_nanmean(iou), macc=_nanmean(acc), pixel_acc=float(intersect.sum() / total) if total else float("nan"),
            iou=iou, acc=acc, pixels=int(total), class_names=class_names,
        )


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def mean_iou(preds: list[np.ndarray] | np.ndarray, labels: list[np.ndarray] | np.ndarray, num_classes: int,
             ignore_index: int = 255) -> SegResult:
    """mIoU, per-class IoU and pixel accuracy of predictions against labels, summed over all images."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    for pred, label in zip(preds, labels, strict=True):
        cm.update(pred, label)
    return cm.result()


def agreement(preds_a: list[np.ndarray] | np.ndarray, preds_b: list[np.ndarray] | np.ndarray,
              num_classes: int) -> SegResult:
    """mIoU of model B's predictions taking model A's as the truth: a label-free fidelity check (1.0 = identical)."""
    return mean_iou(preds_b, preds_a, num_classes, ignore_index=-1)


def evaluate(predict: Callable[[torch.Tensor], Any], samples: Iterable[Sample], preprocess: Preprocess,
             num_classes: int, ignore_index: int = 255, progress: Callable[[int, ConfusionMatrix], None] | None = None,
             class_names: list[str] | None = None) -> SegResult:
    """Run ``predict`` (input tensor → logits) over labelled samples one at a time, scoring at each label's size."""
    from mobilevit_deploy.data.preprocess import logits_to_label

    cm = ConfusionMatrix(num_classes, ignore_index)
    for i, sample in enumerate(samples, 1):
        logits = predict(preprocess(sample.image))
        cm.update(logits_to_label(logits, sample.label.shape)[0], sample.label)
        if progress is not None:
            progress(i, cm)
    return cm.result(class_names)
