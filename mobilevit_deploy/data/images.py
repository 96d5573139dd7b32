"""Reading and writing images: PNG natively (zlib + numpy), JPEG and other formats through Pillow when installed.

Why a PNG codec of our own: label maps are PNGs and must round-trip exactly, and the package has no image
dependency. Decoding JPEG needs Pillow; without it, reading a ``.jpg`` raises a ``DataError`` that says so.
Every failure names the file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from mobilevit_deploy.png import PNG_SIGNATURE, encode_png

from .errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB (grey is replicated, alpha dropped)."""
    array = _read(path)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.shape[2] == 2:
        array = np.repeat(array[..., :1], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def read_label(path: Path) -> np.ndarray:
    """A label PNG as H×W uint8 class ids (palette indices, not colours, for palette PNGs as ADE20K ships)."""
    array = _read(path, palette_indices=True)
    if array.ndim == 3:
        if array.shape[2] == 1 or np.array_equal(array[..., 0], array[..., 1]):
            return np.ascontiguousarray(array[..., 0])
        raise DataError(f"label {path} is a colour image, not a map of class ids",
                        hint="labels must be single-channel (greyscale or palette) PNGs of class indices")
    return array


def write_png(path: Path, array: np.ndarray) -> None:
    """Write H×W (grey) or H×W×3 (RGB) uint8 as a PNG; exact, so labels round-trip."""
    Path(path).write_bytes(encode_png(array))


def _read(path: Path, palette_indices: bool = False) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if data.startswith(PNG_SIGNATURE):
        try:
            return _decode_png(data, palette_indices)
        except (ValueError, zlib.error, struct.error, IndexError) as err:
            raise DataError(f"{path} is not a valid PNG ({err})") from None
    return _read_with_pillow(path, data)


def _read_with_pillow(path: Path, data: bytes) -> np.ndarray:
    if not data.startswith((b"\xff\xd8", b"BM", b"RIFF")):
        raise DataError(f"{path} is not an image (PNG, JPEG, BMP or WebP)",
                        hint="remove non-image files from the folder")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(f"cannot decode {path}: reading JPEG/BMP/WebP needs Pillow, which is not installed",
                        hint="pip install pillow, or convert the images to PNG") from None
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "RGB", "RGBA", "P"):
                img = img.convert("RGB")
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path} is not a readable image ({err})") from None


def _decode_png(data: bytes, palette_indices: bool) -> np.ndarray:
    """Non-interlaced 8-bit PNGs of any colour type (16-bit is reduced to its high byte)."""
    pos, idat, palette, header = 8, [], None, None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if interlace or depth not in (8, 16) or colour_type not in _CHANNELS:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour_type}, interlace {interlace})")
    channels = _CHANNELS[colour_type]
    bpp = channels * depth // 8
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    stride = width * bpp
    if raw.size != height * (stride + 1):
        raise ValueError("truncated image data")
    pixels = _unfilter(raw.reshape(height, stride + 1), bpp)
    if depth == 16:
        pixels = pixels.reshape(height, -1, 2)[..., 0]
    array = pixels.reshape(height, width, channels)
    if colour_type == 3:
        if palette_indices:
            return array[..., 0].copy()
        if palette is None:
            raise ValueError("palette image without PLTE")
        return palette[array[..., 0]]
    return array[..., 0].copy() if channels == 1 else array


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters (None, Sub, Up, Average, Paeth)."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        elif kind in (1, 3, 4):
            cur = _unfilter_sequential(line, prev, bpp, kind)
        else:
            raise ValueError(f"bad filter type {kind} in row {y}")
        out[y] = cur
        prev = cur.astype(np.int32)
    return out


def _unfilter_sequential(line: np.ndarray, prev: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Sub, Average and Paeth depend on the byte to the left, so they run per pixel (vectorized over channels)."""
    cur = np.zeros_like(line)
    for x in range(0, line.size, bpp):
        up = prev[x:x + bpp]
        left = cur[x - bpp:x] if x >= bpp else np.zeros(bpp, np.int32)
        if kind == 1:
            pred = left
        elif kind == 3:
            pred = (left + up) >> 1
        else:
            upleft = prev[x - bpp:x] if x >= bpp else np.zeros(bpp, np.int32)
            p = left + up - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        cur[x:x + bpp] = (line[x:x + bpp] + pred) & 0xFF
    return cur
