"""THE one place where images become model inputs and logits become label maps.

Why one place: a quantizer calibrated on differently normalised data, or a phone app that resizes differently
from evaluation, silently loses accuracy. Training, calibration, evaluation and every runtime read this, and
bundles write ``Preprocess.metadata()`` so an app can reproduce it exactly.

It follows the official mmseg ADE20K test pipeline (``LoadImageFromFile`` → ``Resize`` → ``Normalize`` with
ImageNet mean/std on the 0–255 scale, ``to_rgb=True``), with one deployment difference: the image is resized to
the model's fixed square input (phones run static shapes) instead of keeping the aspect ratio. Logits are
resized bilinearly (``align_corners=False``) back to the original label size before the argmax, as mmseg does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mobilevit_deploy.models import model_info

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Preprocess:
    """Resize to ``size`` (H, W) bilinearly, keep RGB order, subtract ``mean`` and divide by ``std`` (0–255 scale)."""

    size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def for_model(cls, name: str, input_size: int | None = None) -> Preprocess:
        """The pipeline of a registered model at its default (or the given) square input size."""
        info = model_info(name)
        side = input_size or info.default_input_size
        info.check_input_size(side)
        return cls((side, side), tuple(info.mean), tuple(info.std))

    def __call__(self, images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """H×W×3 uint8 RGB image(s) → N×3×H×W float32 input tensor."""
        batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        tensors = [self._one(img) for img in batch]
        return torch.stack(tensors)

    def _one(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        if tuple(x.shape[1:]) != self.size:
            x = F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False)[0]
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def metadata(self) -> dict[str, Any]:
        """What a bundle's metadata.json records so an app can reproduce this pipeline byte for byte."""
        return {
            "input_size": list(self.size),
            "layout": "NCHW",
            "dtype": "float32",
            "color_order": "RGB",
            "resize": {"mode": "bilinear", "align_corners": False, "keep_ratio": False},
            "pixel_scale": "0-255",
            "mean": list(self.mean),
            "std": list(self.std),
            "formula": "(pixel - mean) / std per channel",
            "postprocess": {"resize_logits": "bilinear, align_corners=False, to the original image size",
                            "then": "argmax over classes"},
        }


def logits_to_label(logits: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N×C×h×w logits → N×H×W int64 predictions at the label's size (bilinear resize, then argmax)."""
    t = torch.as_tensor(logits).float()
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t.argmax(1).numpy()
