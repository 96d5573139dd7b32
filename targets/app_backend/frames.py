"""Camera frame formats as libmvdseg reads them, in numpy: the reference its NV21 conversion is tested against.

NV21 (Android's camera preview format) is a full-resolution Y plane followed by one interleaved V/U plane at
half resolution in both directions. libmvdseg converts it to RGB with BT.601 full-range (JFIF) coefficients in
16-bit fixed point with a single rounding, exactly as :func:`nv21_to_rgb` does here.
"""

from __future__ import annotations

import numpy as np

# BT.601 full range, scaled by 2**16: R = Y + 1.402 V', G = Y - 0.344136 U' - 0.714136 V', B = Y + 1.772 U'.
_R_V, _G_U, _G_V, _B_U = 91881, 22554, 46802, 116130


def nv21_to_rgb(nv21: np.ndarray, width: int, height: int, stride: int | None = None) -> np.ndarray:
    """An NV21 buffer (rows of ``stride`` bytes) -> H x W x 3 uint8 RGB, as libmvdseg converts it."""
    stride = stride or width
    buf = np.asarray(nv21, np.uint8).reshape(-1)
    y = buf[: stride * height].reshape(height, stride)[:, :width].astype(np.int32)
    vu = buf[stride * height: stride * height + stride * (height // 2)].reshape(height // 2, stride)
    v = np.repeat(np.repeat(vu[:, 0:width:2].astype(np.int32) - 128, 2, axis=0), 2, axis=1)[:height, :width]
    u = np.repeat(np.repeat(vu[:, 1:width:2].astype(np.int32) - 128, 2, axis=0), 2, axis=1)[:height, :width]
    base = y * 65536 + 32768
    rgb = np.stack([(base + _R_V * v) >> 16, (base - _G_U * u - _G_V * v) >> 16, (base + _B_U * u) >> 16], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def rgb_to_nv21(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB (even sides) -> a packed NV21 buffer, the way a camera would deliver that picture."""
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"NV21 needs even sides, got {width}x{height}")
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    vu = np.stack([_pool2x2(v), _pool2x2(u)], axis=-1).reshape(height // 2, width)
    return np.concatenate([_to_u8(y).reshape(-1), _to_u8(vu).reshape(-1)])


def _pool2x2(c: np.ndarray) -> np.ndarray:
    return c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean(axis=(1, 3))


def _to_u8(c: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def rgb_to_rgba(rgb: np.ndarray, alpha: int = 255) -> np.ndarray:
    """H x W x 3 -> H x W x 4 uint8 (libmvdseg ignores alpha)."""
    return np.concatenate([rgb, np.full((*rgb.shape[:2], 1), alpha, np.uint8)], axis=-1)
