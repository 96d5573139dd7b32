"""A bar chart written as PNG (numpy only): the venv has no matplotlib and we install nothing.

The chart has no text (no font): bars in table order, one colour per quantizer kind, a grey line every 10 dB;
the JSON next to it carries the names and values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.png import encode_png


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an H×W×3 uint8 image as an 8-bit RGB PNG (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_png(rgb, level=9))
    return path


PALETTE = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193)]


def bar_chart(values: list[float], colors: list[int], *, height: int = 240, bar: int = 4, gap: int = 1,
              vmax: float | None = None) -> np.ndarray:
    """Bars of ``values`` (≥ 0; inf drawn full height) as an RGB image; ``colors`` index ``PALETTE``."""
    finite = [v for v in values if np.isfinite(v)]
    top = vmax or max([10.0, *finite]) * 1.05
    width = max(1, len(values) * (bar + gap) + gap)
    img = np.full((height, width, 3), 255, np.uint8)
    for level in np.arange(10, top, 10):
        img[height - 1 - int(level / top * (height - 1)), :] = (200, 200, 200)
    for i, (v, c) in enumerate(zip(values, colors, strict=True)):
        v = top if not np.isfinite(v) and v > 0 else max(0.0, v if np.isfinite(v) else 0.0)
        h = round(min(v, top) / top * (height - 1))
        x0 = gap + i * (bar + gap)
        if h:
            img[height - h:, x0:x0 + bar] = PALETTE[c % len(PALETTE)]
    return img
