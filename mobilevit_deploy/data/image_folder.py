"""A plain folder of images without labels: calibration data and label-free agreement checks.

Files are taken in sorted order (reproducible calibration). Hidden files are skipped; any other file that is not
an image raises a ``DataError`` naming it, so a stray file never silently changes what was calibrated on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import DataError
from .images import IMAGE_SUFFIXES, read_rgb
from .sample import Sample


def list_images(folder: Path) -> list[Path]:
    """Sorted image files of ``folder`` (not recursive); an empty folder or a non-image file is an error."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}", hint="check the path")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p for p in files if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise DataError(f"{others[0]} is not an image" + (f" (and {len(others) - 1} more)" if len(others) > 1 else ""),
                        hint=f"keep only {', '.join(IMAGE_SUFFIXES)} files in {folder}")
    images = [p for p in files if p.is_file()]
    if not images:
        raise DataError(f"no images in {folder}", hint=f"expected {', '.join(IMAGE_SUFFIXES)} files")
    return images


class ImageFolder:
    """Unlabelled images of one folder, read lazily as RGB."""

    num_classes = None
    ignore_index = 255

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.images = list_images(self.root)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index]
        return Sample(name=path.stem, image=read_rgb(path), path=path)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def describe(self) -> str:
        return f"image folder {self.root} ({len(self)} images, no labels)"
