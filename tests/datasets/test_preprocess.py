"""The one preprocessing pipeline: RGB order, ImageNet mean/std on 0–255, bilinear resize, and its metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobilevit_deploy.data import Preprocess, logits_to_label
from mobilevit_deploy.errors import InputSizeError


def test_normalises_each_rgb_channel_with_imagenet_statistics() -> None:
    pre = Preprocess.for_model("topformer_tiny", 64)
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 10
    x = pre(image)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    expected = [(255 - 123.675) / 58.395, (0 - 116.28) / 57.12, (10 - 103.53) / 57.375]
    np.testing.assert_allclose(x[0, :, 5, 5].numpy(), expected, rtol=1e-6)


def test_resizes_any_image_to_the_model_input_and_logits_back_to_the_image() -> None:
    pre = Preprocess.for_model("casvit_xs_seg", 96)
    assert pre([np.zeros((50, 70, 3), np.uint8)] * 2).shape == (2, 3, 96, 96)
    logits = torch.zeros(1, 3, 12, 12)
    logits[0, 2] = 1.0
    pred = logits_to_label(logits, (50, 70))
    assert pred.shape == (1, 50, 70) and (pred == 2).all()


def test_input_size_must_fit_the_model() -> None:
    with pytest.raises(InputSizeError, match="multiples of 64"):
        Preprocess.for_model("topformer_tiny", 100)


def test_metadata_spells_out_the_pipeline_for_bundles() -> None:
    meta = Preprocess.for_model("topformer_tiny", 256).metadata()
    assert meta["input_size"] == [256, 256] and meta["color_order"] == "RGB" and meta["pixel_scale"] == "0-255"
    assert meta["mean"] == [123.675, 116.28, 103.53] and meta["std"] == [58.395, 57.12, 57.375]
    assert meta["resize"] == {"mode": "bilinear", "align_corners": False, "keep_ratio": False}
