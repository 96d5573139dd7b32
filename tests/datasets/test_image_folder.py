"""A plain folder of images (calibration data): sorted, unlabelled, strict about what it contains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mobilevit_deploy.data import DataError, ImageFolder, open_dataset
from mobilevit_deploy.data.images import write_png


def test_reads_images_in_sorted_order_without_labels(tmp_path: Path) -> None:
    for name, value in (("b", 2), ("a", 1)):
        write_png(tmp_path / f"{name}.png", np.full((4, 5, 3), value, np.uint8))
    write_png(tmp_path / "c.png", np.full((4, 5), 9, np.uint8))  # greyscale becomes RGB
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    ds = open_dataset(tmp_path)
    assert isinstance(ds, ImageFolder) and [s.name for s in ds] == ["a", "b", "c"]
    assert ds[0].label is None and ds[0].image.shape == (4, 5, 3) and ds[0].image[0, 0, 0] == 1
    assert ds[2].image.shape == (4, 5, 3) and ds[2].image[0, 0].tolist() == [9, 9, 9]


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"no images in {tmp_path}"):
        ImageFolder(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        open_dataset(tmp_path / "nope")


def test_non_image_file(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "labels.csv").write_text("a,1\n")
    with pytest.raises(DataError, match=r"labels\.csv is not an image"):
        ImageFolder(tmp_path)
