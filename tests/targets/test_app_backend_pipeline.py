"""libmvdseg's frame preprocessing and logits post-processing against PyTorch itself, bit for bit.

The reference is mobilevit_deploy.data.preprocess (Preprocess, logits_to_label) with one PyTorch thread, as
conftest.py and `mvd eval` run it. Cases cover both of PyTorch's bilinear loops (channels-last for 3-channel
images and for outputs with height + width <= 128, generic otherwise), identity axes, 1x1, odd and portrait
sizes, and class counts around the 8-lane vector blocks. Needs only the host library build (no model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from app_backend_native import run_native

from mobilevit_deploy.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, logits_to_label
from mobilevit_deploy.targets.app_backend import build_app_library
from mobilevit_deploy.targets.app_backend.frames import rgb_to_rgba

FRAMES = [(427, 640), (1, 1), (37, 53), (64, 64), (64, 97), (301, 333), (640, 427), (1080, 1920)]
INPUTS = [(64, 64), (96, 128), (256, 256), (512, 512)]
LOGITS = [  # (classes, logits h x w, output h x w, kind of logits)
    (150, (8, 8), (240, 320), "normal"), (150, (8, 8), (37, 53), "normal"), (150, (8, 8), (1, 1), "normal"),
    (150, (8, 8), (8, 8), "normal"), (24, (32, 32), (64, 64), "normal"), (24, (32, 32), (65, 64), "normal"),
    (24, (32, 32), (640, 427), "normal"), (17, (5, 7), (60, 61), "normal"), (8, (64, 64), (33, 95), "normal"),
    (3, (8, 8), (300, 200), "normal"), (2, (8, 8), (301, 333), "normal"), (1, (8, 8), (100, 100), "normal"),
    (24, (64, 64), (32, 32), "normal"), (5, (8, 8), (8, 97), "normal"),
    # what trained models give (one class dominates each region) and near ties between two classes: the
    # argmax skips classes that cannot win a cell, which must never change a label
    (150, (16, 16), (300, 400), "peaked"), (24, (8, 8), (427, 640), "peaked"), (150, (8, 8), (200, 333), "near_tie"),
]


def make_logits(rng: np.random.Generator, classes: int, lh: int, lw: int, kind: str) -> np.ndarray:
    logits = rng.standard_normal((1, classes, lh, lw)) * 3
    if kind == "peaked":
        logits = rng.standard_normal((1, classes, lh, lw)) * 0.5
        winner = rng.integers(0, classes, (lh, lw))
        logits[0, winner, np.arange(lh)[:, None], np.arange(lw)[None, :]] += 6.0
    elif kind == "near_tie":
        logits[0, 1] = logits[0, 0] + rng.standard_normal((lh, lw)) * 1e-6
        logits[0, 0] += 10.0
        logits[0, 1] += 10.0
    return logits.astype(np.float32)


@pytest.fixture(scope="module")
def library() -> Path:
    return build_app_library("executorch", "host").library


def bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def test_preprocess_is_bit_identical_to_python(library: Path, tmp_path: Path) -> None:
    assert torch.get_num_threads() == 1  # the documented reference setting (pipeline.h)
    rng = np.random.default_rng(0)
    ops, expected = [], []
    for i, (h, w) in enumerate(FRAMES):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        np.save(tmp_path / f"frame{i}.npy", rgb_to_rgba(rgb))
        for j, size in enumerate(INPUTS):
            out = tmp_path / f"x{i}_{j}.npy"
            ops.append({"op": "preprocess", "frame": str(tmp_path / f"frame{i}.npy"), "size": list(size),
                        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "out": str(out)})
            expected.append((Preprocess(size)(rgb).numpy(), out, (h, w), size))
    results = run_native(library, ops, tmp_path)
    assert all(r["status"] == 0 for r in results), results
    for reference, out, frame, size in expected:
        got = np.load(out)
        assert got.shape == reference.shape
        differing = int((bits(got) != bits(reference)).sum())
        assert differing == 0, f"{differing} input values differ for a {frame} frame resized to {size}"


def test_logits_resize_and_argmax_are_bit_identical_to_python(library: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ops, expected = [], []
    for i, (classes, (lh, lw), size, kind) in enumerate(LOGITS):
        logits = make_logits(rng, classes, lh, lw, kind)
        np.save(tmp_path / f"logits{i}.npy", logits)
        for kind in ("resize", "labels"):
            ops.append({"op": kind, "logits": str(tmp_path / f"logits{i}.npy"), "size": list(size),
                        "out": str(tmp_path / f"{kind}{i}.npy")})
        t = torch.from_numpy(logits)
        resized = t if (lh, lw) == size else torch.nn.functional.interpolate(t, size=size, mode="bilinear",
                                                                                 align_corners=False)
        expected.append((i, resized.numpy(), logits_to_label(logits, size)[0]))
    results = run_native(library, ops, tmp_path)
    assert all(r["status"] == 0 for r in results), results
    for i, resized, labels in expected:
        got = np.load(tmp_path / f"resize{i}.npy")
        differing = int((bits(got) != bits(resized)).sum())
        assert differing == 0, f"case {LOGITS[i]}: {differing} resized logits differ"
        np.testing.assert_array_equal(np.load(tmp_path / f"labels{i}.npy"), labels.astype(np.uint8))


def test_argmax_keeps_the_first_of_tied_classes(library: Path, tmp_path: Path) -> None:
    logits = np.zeros((1, 4, 2, 2), np.float32)
    logits[0, 2] = 1.0
    logits[0, 3] = 1.0  # ties with class 2 everywhere
    logits[0, 1, 0, 0] = np.nan  # torch.argmax treats NaN as the maximum
    np.save(tmp_path / "tie.npy", logits)
    ops = [{"op": "labels", "logits": str(tmp_path / "tie.npy"), "size": [2, 2], "out": str(tmp_path / "t.npy")}]
    assert run_native(library, ops, tmp_path)[0]["status"] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), logits_to_label(logits, (2, 2))[0])
    assert np.load(tmp_path / "t.npy").tolist() == [[1, 2], [2, 2]]


def test_bad_arguments_get_a_status_and_a_message(library: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "many.npy", np.zeros((1, 300, 2, 2), np.float32))
    np.save(tmp_path / "few.npy", np.zeros((1, 4, 2, 2), np.float32))
    np.save(tmp_path / "f.npy", np.zeros((4, 4, 4), np.uint8))
    out = str(tmp_path / "o.npy")
    ops = [
        {"op": "labels", "logits": str(tmp_path / "many.npy"), "size": [4, 4], "out": out},
        {"op": "labels", "logits": str(tmp_path / "few.npy"), "size": [0, 4], "out": out},
        {"op": "labels", "logits": str(tmp_path / "few.npy"), "size": [4097, 4], "out": out},
        {"op": "preprocess", "frame": str(tmp_path / "f.npy"), "size": [0, 64], "mean": [0, 0, 0],
         "std": [1, 1, 1], "out": out},
    ]
    results = run_native(library, ops, tmp_path)
    assert [r["name"] for r in results] == ["MVD_ERR_INVALID_ARGUMENT", "MVD_ERR_FRAME_SIZE", "MVD_ERR_FRAME_SIZE",
                                            "MVD_ERR_INVALID_ARGUMENT"]
    assert results[0]["message"] == "logits need 1..256 classes and a non-empty map"
    assert results[1]["message"] == "frame 4x0 is empty; pass its real size"
    assert results[2]["message"] == "frame 4x4097 is larger than 4096 on a side; downscale it first"
    assert results[3]["message"] == "the model input size must be 1..4096 on a side"
