"""ADE20K in its official layout (``ADEChallengeData2016``), labels shifted exactly as mmseg's ``reduce_zero_label``.

Layout: ``images/{training,validation}/<stem>.jpg`` with ``annotations/{training,validation}/<stem>.png``.
Label PNGs hold 0 (unlabelled) and 1..150; mmseg maps 0 → 255 (ignored) and c → c-1, so the model's classes are
0..149. Any other value is a broken label and raises a ``DataError`` naming the file, as does a missing label,
a size mismatch between image and label, or a file that is not an image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DataError
from .image_folder import list_images
from .images import read_label, read_rgb
from .sample import Sample

NUM_CLASSES = 150
IGNORE_INDEX = 255
SPLITS = ("training", "validation")


def is_ade20k_root(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "annotations").is_dir()


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """mmseg's ``reduce_zero_label``: 0 → 255, c → c-1 (so 255 stays ignored), as uint8."""
    out = label.astype(np.int16) - 1
    out[label == 0] = IGNORE_INDEX
    out[out == IGNORE_INDEX - 1] = IGNORE_INDEX
    return out.astype(np.uint8)


class ADE20K:
    """One split of an ADE20K-layout folder; samples are read (and checked) lazily, in sorted order."""

    num_classes = NUM_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(self, root: str | Path, split: str = "validation") -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DataError(f"unknown ADE20K split {split!r}", hint=f"choose {' or '.join(SPLITS)}")
        self.split = split
        image_dir, self.label_dir = self.root / "images" / split, self.root / "annotations" / split
        for folder in (image_dir, self.label_dir):
            if not folder.is_dir():
                raise DataError(f"{self.root} is not an ADE20K folder: {folder} is missing",
                                hint="expected images/{training,validation} and annotations/{training,validation}")
        self.images = list_images(image_dir)
        missing = [p for p in self.images if not self._label_path(p).is_file()]
        if missing:
            raise DataError(f"no label for {missing[0]}: expected {self._label_path(missing[0])}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))

    def _label_path(self, image: Path) -> Path:
        return self.label_dir / (image.stem + ".png")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        image_path = self.images[index]
        label_path = self._label_path(image_path)
        image, raw = read_rgb(image_path), read_label(label_path)
        if image.shape[:2] != raw.shape:
            raise DataError(f"label {label_path} is {raw.shape[1]}x{raw.shape[0]} but image {image_path} is "
                            f"{image.shape[1]}x{image.shape[0]}", hint="each label must have its image's size")
        bad = (raw > NUM_CLASSES) & (raw != IGNORE_INDEX)
        if bad.any():
            raise DataError(f"label {label_path} has value {int(raw[bad].max())} outside 0..{NUM_CLASSES}",
                            hint="ADE20K labels are 0 (unlabelled) and 1..150")
        return Sample(name=image_path.stem, image=image, label=reduce_zero_label(raw), path=image_path)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def describe(self) -> str:
        return f"ADE20K {self.split} split at {self.root} ({len(self)} images)"
