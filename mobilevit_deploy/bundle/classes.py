"""Class names and colour palettes written into segmentation bundles (so an app can draw the label map)."""

from __future__ import annotations

import colorsys
import json
from functools import cache
from pathlib import Path


@cache
def ade20k_classes() -> tuple[list[str], list[list[int]]]:
    """The 150 ADE20K classes and palette, as mmsegmentation defines them."""
    data = json.loads((Path(__file__).parent / "ade20k_classes.json").read_text())
    return data["classes"], data["palette"]


def generic_palette(num_classes: int) -> list[list[int]]:
    """Distinct, deterministic colours for a label set without an official palette (golden-ratio hues)."""
    colours = []
    for i in range(num_classes):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65 + 0.35 * (i % 2), 0.95 - 0.3 * (i % 3) / 2)
        colours.append([round(r * 255), round(g * 255), round(b * 255)])
    return colours


def class_table(num_classes: int, names: list[str] | None = None) -> dict[str, list]:
    """Names and palette: given names, ADE20K's for 150 classes, otherwise ``class_i`` with generic colours."""
    if names is not None:
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for {num_classes} classes")
        return {"names": list(names), "palette": generic_palette(num_classes)}
    if num_classes == 150:
        ade_names, palette = ade20k_classes()
        return {"names": ade_names, "palette": palette}
    return {"names": [f"class_{i}" for i in range(num_classes)], "palette": generic_palette(num_classes)}
