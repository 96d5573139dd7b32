"""The ADE20K loader on a tiny folder written here in the official layout: label shift, mIoU, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mobilevit_deploy.data import ADE20K, DataError, open_dataset
from mobilevit_deploy.data.images import write_png
from mobilevit_deploy.metrics import mean_iou

# raw ADE20K values: 0 unlabelled, 1..150 classes (150 included); 255 also means ignore after the shift
RAW_A = np.array([[0, 1, 2], [150, 3, 0]], np.uint8)
RAW_B = np.array([[1, 1], [150, 150], [255, 2]], np.uint8)


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_ade20k(root: Path, split: str = "validation") -> Path:
    """ADEChallengeData2016 layout. Images are PNG here (the package has no JPEG encoder); .jpg is tested below."""
    (root / "images" / split).mkdir(parents=True)
    (root / "annotations" / split).mkdir(parents=True)
    for name, raw, seed in (("ADE_val_00000001", RAW_A, 1), ("ADE_val_00000002", RAW_B, 2)):
        write_png(root / "images" / split / f"{name}.png", _rgb(*raw.shape, seed))
        write_png(root / "annotations" / split / f"{name}.png", raw)
    return root


def test_labels_shift_like_mmseg_reduce_zero_label(tmp_path: Path) -> None:
    ds = ADE20K(make_ade20k(tmp_path))
    assert len(ds) == 2 and ds.num_classes == 150
    a, b = ds[0], ds[1]
    np.testing.assert_array_equal(a.label, [[255, 0, 1], [149, 2, 255]])
    np.testing.assert_array_equal(b.label, [[0, 0], [149, 149], [255, 1]])
    assert a.image.shape == (2, 3, 3) and a.image.dtype == np.uint8 and a.name == "ADE_val_00000001"


def test_miou_on_hand_computed_predictions(tmp_path: Path) -> None:
    ds = ADE20K(make_ade20k(tmp_path))
    # image A scored pixels (label->pred): 0->0, 1->1, 149->0, 2->2 ; image B: 0->0, 0->0, 149->149, 149->2, 1->1
    pred_a = np.array([[7, 0, 1], [0, 2, 7]])
    pred_b = np.array([[0, 0], [149, 2], [7, 1]])
    r = mean_iou([pred_a, pred_b], [ds[0].label, ds[1].label], num_classes=150)
    # class 0: I=3, label 3, pred 4 -> 3/4; class 1: I=2, U=2 -> 1; class 2: I=1, label 1, pred 2 -> 1/2;
    # class 149: I=1, label 3, pred 1 -> 1/3; 146 classes absent from both are excluded; class 7 only at ignore
    assert r.miou == pytest.approx((3 / 4 + 1 + 1 / 2 + 1 / 3) / 4)
    assert r.pixel_acc == pytest.approx(7 / 9)
    assert int(np.sum(~np.isnan(r.iou))) == 4


def test_open_dataset_recognises_the_layout(tmp_path: Path) -> None:
    assert isinstance(open_dataset(make_ade20k(tmp_path)), ADE20K)


def test_jpeg_images_read_through_pillow_or_say_it_is_missing(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    image = root / "images" / "validation" / "ADE_val_00000001.png"
    jpg = image.with_suffix(".jpg")
    try:
        from PIL import Image
    except ImportError:
        jpg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 32)
        image.unlink()
        with pytest.raises(DataError, match=r"ADE_val_00000001\.jpg.*needs Pillow"):
            ADE20K(root)[0]
        return
    Image.fromarray(_rgb(*RAW_A.shape, 1)).save(jpg, quality=95)
    image.unlink()
    assert ADE20K(root)[0].image.shape == (2, 3, 3)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "images" / "validation").mkdir(parents=True)
    (tmp_path / "annotations" / "validation").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images in .*images/validation"):
        ADE20K(tmp_path)


def test_label_value_out_of_range_names_the_file(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    bad = root / "annotations" / "validation" / "ADE_val_00000002.png"
    write_png(bad, np.where(RAW_B == 2, 151, RAW_B).astype(np.uint8))
    ds = ADE20K(root)
    ds[0]
    with pytest.raises(DataError, match=r"ADE_val_00000002\.png has value 151 outside 0\.\.150"):
        ds[1]


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    write_png(root / "annotations" / "validation" / "ADE_val_00000001.png", np.zeros((4, 3), np.uint8))
    with pytest.raises(DataError, match=r"ADE_val_00000001\.png is 3x4 but image .*ADE_val_00000001\.png is 3x2"):
        ADE20K(root)[0]


def test_non_image_file_names_it(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    (root / "images" / "validation" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is not an image"):
        ADE20K(root)


def test_corrupt_image_names_it(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    (root / "images" / "validation" / "ADE_val_00000001.png").write_text("not really a png")
    with pytest.raises(DataError, match=r"ADE_val_00000001\.png is not an image"):
        ADE20K(root)[0]


def test_missing_label_names_the_image(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path)
    (root / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    with pytest.raises(DataError, match=r"no label for .*ADE_val_00000002\.png"):
        ADE20K(root)
