"""A generated segmentation task ("shapes"): the built-in data when no dataset can be downloaded.

Why it exists: quantizers are compared by accuracy and a deployed model is judged by whether it still segments,
so the toolchain needs labelled data it can make itself. The task is built to be learnable but not saturated by
a small model in minutes on a CPU:

* ``NUM_CLASSES`` = 24 classes. 4 background ("stuff") classes fill the image in wavy horizontal bands; 20 object
  ("thing") classes are the product of 5 hues × 4 textures (stripes, checker, dots, speckle), so a class is only
  identified by colour *and* texture together; the shape (ellipse, rotated box, triangle, star blob) is random.
* 8–19 objects per image vary 28× in area, overlap and occlude each other, and are cut by the image border;
  they carry per-instance jitter of hue, saturation, brightness, texture period and angle, so neighbouring hues
  come close after jitter and illumination.
* Illumination: a global colour cast and a linear brightness ramp; then Gaussian sensor noise of random strength.
* Some small "clutter" objects are labelled ``IGNORE_INDEX`` (like ADE20K's unlabelled pixels).

Everything is a pure function of ``(seed, split, index)`` through numpy's PCG64, so the same seed gives the
same images on any machine, and an index can be generated alone (no stored dataset, any split size).
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .sample import Sample

IGNORE_INDEX = 255
HUES = (0.0, 0.13, 0.33, 0.55, 0.75)
TEXTURES = ("stripes", "checker", "dots", "speckle")
BACKGROUNDS = ("sky", "wall", "grass", "floor")
NUM_BACKGROUND = len(BACKGROUNDS)
NUM_CLASSES = NUM_BACKGROUND + len(HUES) * len(TEXTURES)
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZE = 256


def class_names() -> list[str]:
    """Readable names, e.g. ``grass`` or ``hue2_dots``, in label order."""
    return list(BACKGROUNDS) + [f"hue{h}_{t}" for h in range(len(HUES)) for t in TEXTURES]


@dataclass(frozen=True)
class ShapesTask:
    """One split of the generated task: ``len(task)`` samples, each made on demand from ``(seed, split, i)``."""

    seed: int = 0
    split: str = "val"
    length: int = 500
    size: int = DEFAULT_SIZE

    num_classes = NUM_CLASSES
    ignore_index = IGNORE_INDEX

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose from {', '.join(SPLITS)}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        image, label = generate(self.seed, self.split, index, self.size)
        return Sample(name=f"shapes_{self.split}_{self.seed}_{index:06d}", image=image, label=label)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(self.length))

    @property
    def class_names(self) -> list[str]:
        return class_names()

    def describe(self) -> str:
        return f"generated shapes task (seed {self.seed}, split {self.split}, {self.length} images of {self.size}²)"


def generate(seed: int, split: str, index: int, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One image (H×W×3 uint8 RGB) and its label (H×W uint8 class ids, ``IGNORE_INDEX`` for unlabelled)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.empty((size, size, 3), np.float32)
    label = np.empty((size, size), np.uint8)
    _paint_background(rng, image, label, yy, xx)
    for _ in range(int(rng.integers(8, 20))):
        _paint_object(rng, image, label, yy, xx, clutter=rng.random() < 0.12)
    _illuminate(rng, image, yy, xx)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), label


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random coarse grid upsampled bilinearly (cheap, no scipy)."""
    h, w = shape
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    gy = np.linspace(0, cells, h, dtype=np.float32)[:, None]
    gx = np.linspace(0, cells, w, dtype=np.float32)[None, :]
    y0, x0 = np.minimum(gy.astype(int), cells - 1), np.minimum(gx.astype(int), cells - 1)
    fy, fx = gy - y0, gx - x0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _background_texture(rng: np.random.Generator, kind: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    size = yy.shape[0]
    if kind == 0:  # sky: a pale blue vertical gradient with soft clouds
        t = (yy / size)[..., None]
        base = _hsv(0.58 + rng.normal(0, 0.02), 0.45, 0.95) * (1 - 0.3 * t) + 0.15 * t
        return base + 0.25 * _smooth_noise(rng, yy.shape, 4)[..., None]
    if kind == 1:  # wall: warm grey with fine grain and faint vertical panels
        panels = 0.06 * (np.sin(xx * 2 * np.pi / rng.uniform(30, 60)) > 0.8)
        grain = 0.08 * rng.random(yy.shape, dtype=np.float32)
        return _hsv(0.08, 0.15 + rng.uniform(-0.05, 0.05), 0.72) + (grain - panels)[..., None]
    if kind == 2:  # grass: green blotches and blades
        blades = 0.1 * np.sin(xx * rng.uniform(0.8, 1.4) + 3 * _smooth_noise(rng, yy.shape, 8))
        blotch = 0.25 * _smooth_noise(rng, yy.shape, 6)
        return _hsv(0.3 + rng.normal(0, 0.02), 0.55, 0.45) + (blades + blotch)[..., None]
    # floor: brown planks with a wood-grain ripple
    period = rng.uniform(18, 40)
    seams = (np.mod(yy, period) < 2).astype(np.float32) * 0.2
    ripple = 0.08 * np.sin(xx * 0.15 + 6 * _smooth_noise(rng, yy.shape, 5))
    return _hsv(0.07 + rng.normal(0, 0.01), 0.6, 0.55) + (ripple - seams)[..., None]


def _paint_background(rng: np.random.Generator, image: np.ndarray, label: np.ndarray,
                      yy: np.ndarray, xx: np.ndarray) -> None:
    """2–3 stuff classes in wavy horizontal bands, top to bottom."""
    size = yy.shape[0]
    bands = int(rng.integers(2, 4))
    kinds = rng.choice(NUM_BACKGROUND, size=bands, replace=False)
    cuts = np.sort(rng.uniform(0.2, 0.8, bands - 1)) * size
    band = np.zeros(yy.shape, np.int64)
    for cut in cuts:
        wave = rng.uniform(3, 15) * np.sin(xx[0] * rng.uniform(0.01, 0.06) + rng.uniform(0, 6.3))
        band += yy > (cut + wave)[None, :]
    for b, kind in enumerate(kinds):
        where = band == b
        image[where] = _background_texture(rng, int(kind), yy, xx)[where]
        label[where] = kind


def _object_texture(rng: np.random.Generator, cls: int, ly: np.ndarray, lx: np.ndarray, extent: float
                    ) -> np.ndarray:
    """The appearance of a thing class on a local patch: class hue × texture, with per-instance jitter."""
    hue_idx, tex = divmod(cls - NUM_BACKGROUND, len(TEXTURES))
    hue = HUES[hue_idx] + rng.normal(0, 0.025)
    color_a = _hsv(hue, rng.uniform(0.5, 0.95), rng.uniform(0.55, 0.95))
    color_b = color_a * rng.uniform(0.25, 0.55)
    period = np.clip(rng.uniform(0.18, 0.4) * extent, 6.0, 22.0)
    angle = rng.uniform(0, np.pi)
    u = lx * np.cos(angle) + ly * np.sin(angle)
    v = -lx * np.sin(angle) + ly * np.cos(angle)
    kind = TEXTURES[tex]
    if kind == "stripes":
        m = (np.mod(u, period) < period / 2).astype(np.float32)
    elif kind == "checker":
        m = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == "dots":
        du, dv = np.mod(u, period) - period / 2, np.mod(v, period) - period / 2
        m = (du * du + dv * dv > (0.3 * period) ** 2).astype(np.float32)
    else:  # speckle: fine random grain, no periodic structure
        m = (rng.random(ly.shape, dtype=np.float32) < 0.5).astype(np.float32)
    return color_b + (color_a - color_b) * m[..., None]


def _shape_mask(rng: np.random.Generator, ly: np.ndarray, lx: np.ndarray, radius: float) -> np.ndarray:
    """A random shape centred at the patch origin: ellipse, rotated box, triangle or star-like blob."""
    angle = rng.uniform(0, np.pi)
    u = lx * np.cos(angle) + ly * np.sin(angle)
    v = -lx * np.sin(angle) + ly * np.cos(angle)
    aspect = rng.uniform(0.45, 1.0)
    kind = int(rng.integers(4))
    if kind == 0:
        return (u / radius) ** 2 + (v / (radius * aspect)) ** 2 <= 1
    if kind == 1:
        return (np.abs(u) <= radius) & (np.abs(v) <= radius * aspect)
    theta, r = np.arctan2(v, u), np.hypot(u, v)
    if kind == 2:  # triangle: r·cos(θ - nearest vertex-normal) <= inradius
        sector = np.mod(theta, 2 * np.pi / 3) - np.pi / 3
        return r * np.cos(sector) <= radius * 0.6
    lobes = int(rng.integers(3, 7))
    return r <= radius * (0.7 + 0.3 * np.cos(lobes * theta + rng.uniform(0, 6.3)))


def _paint_object(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                  clutter: bool) -> None:
    size = yy.shape[0]
    radius = float(np.exp(rng.uniform(np.log(0.06), np.log(0.32))) * size)
    if clutter:
        radius *= 0.5
    cy, cx = rng.uniform(-0.1, 1.1, 2) * size
    y0, y1 = max(int(cy - radius) - 1, 0), min(int(cy + radius) + 2, size)
    x0, x1 = max(int(cx - radius) - 1, 0), min(int(cx + radius) + 2, size)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return
    ly, lx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    mask = _shape_mask(rng, ly, lx, radius)
    if clutter:
        patch = _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.2, 0.9)) + 0.2 * (
            rng.random((*ly.shape, 1), dtype=np.float32) - 0.5)
        cls = IGNORE_INDEX
    else:
        cls = int(rng.integers(NUM_BACKGROUND, NUM_CLASSES))
        patch = _object_texture(rng, cls, ly, lx, radius)
    image[y0:y1, x0:x1][mask] = patch[mask]
    label[y0:y1, x0:x1][mask] = cls


def _illuminate(rng: np.random.Generator, image: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
    """Colour cast, a brightness ramp in a random direction, and sensor noise, in place."""
    size = yy.shape[0]
    cast = 1 + rng.normal(0, 0.06, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / size - 0.5 * (np.cos(angle) + np.sin(angle))
    gain = rng.uniform(0.65, 1.25) + rng.uniform(0, 0.6) * ramp
    image *= cast
    image *= gain[..., None]
    image += rng.normal(0, rng.uniform(0.005, 0.06), image.shape).astype(np.float32)
