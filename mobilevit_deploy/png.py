"""PNG encoding with numpy and zlib only (no Pillow, no matplotlib), importable from any layer."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode_png(array: np.ndarray, level: int = 6) -> bytes:
    """H×W (grey) or H×W×3 (RGB) uint8 as 8-bit PNG bytes; lossless, so label maps round-trip."""
    array = np.ascontiguousarray(array, np.uint8)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected H×W or H×W×3, got shape {array.shape}")
    height, width = array.shape[:2]
    colour_type = 0 if array.ndim == 2 else 2
    rows = array.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b"")
