"""``--data`` on the command line: a folder (ADE20K layout or plain images) or the generated task by name."""

from __future__ import annotations

from pathlib import Path

from .ade20k import ADE20K, is_ade20k_root
from .errors import DataError
from .generated import SPLITS as SHAPES_SPLITS
from .generated import ShapesTask
from .image_folder import ImageFolder

Dataset = ADE20K | ImageFolder | ShapesTask
SHAPES_PREFIX = "shapes"


def open_dataset(spec: str | Path, split: str | None = None, length: int = 500, seed: int = 0,
                 size: int | None = None) -> Dataset:
    """``shapes`` / ``shapes:val`` (generated task), an ADE20K root (default split ``validation``), or a folder."""
    text = str(spec)
    if text == SHAPES_PREFIX or text.startswith(SHAPES_PREFIX + ":"):
        name = text.partition(":")[2] or split or "val"
        if name not in SHAPES_SPLITS:
            raise DataError(f"unknown split {name!r} of the generated task", hint=f"use {', '.join(SHAPES_SPLITS)}")
        return ShapesTask(seed=seed, split=name, length=length, **({"size": size} if size else {}))
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data folder not found: {path}",
                        hint="pass an ADE20K folder, a folder of images, or `shapes` for the generated task")
    if is_ade20k_root(path):
        return ADE20K(path, split or "validation")
    return ImageFolder(path)
