"""The built-in PNG codec: exact round trips, and every PNG row filter real label files use."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from mobilevit_deploy.data import DataError
from mobilevit_deploy.data.images import PNG_SIGNATURE, read_label, read_rgb, write_png


def _filtered_png(array: np.ndarray, colour_type: int, palette: bytes = b"") -> bytes:
    """Encode with filter type (row % 5): None, Sub, Up, Average, Paeth, like encoders that pick per row."""
    h, w = array.shape[:2]
    bpp = 1 if array.ndim == 2 else array.shape[2]
    rows = array.reshape(h, -1).astype(np.int32)
    out = bytearray()
    for y in range(h):
        kind, line = y % 5, rows[y]
        up = rows[y - 1] if y else np.zeros_like(line)
        left = np.concatenate([np.zeros(bpp, np.int32), line[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        p = left + up - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        pred = [np.zeros_like(line), left, up, (left + up) >> 1, paeth][kind]
        out += bytes([kind]) + ((line - pred) & 0xFF).astype(np.uint8).tobytes()

    def chunk(k: bytes, b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))

    head = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    plte = chunk(b"PLTE", palette) if palette else b""
    return PNG_SIGNATURE + chunk(b"IHDR", head) + plte + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


def test_round_trip_exact(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    label = np.random.default_rng(1).integers(0, 256, (7, 5), dtype=np.uint8)
    write_png(tmp_path / "i.png", rgb)
    write_png(tmp_path / "l.png", label)
    np.testing.assert_array_equal(read_rgb(tmp_path / "i.png"), rgb)
    np.testing.assert_array_equal(read_label(tmp_path / "l.png"), label)


@pytest.mark.parametrize("channels", [1, 3])
def test_all_row_filters(tmp_path: Path, channels: int) -> None:
    shape = (11, 9) if channels == 1 else (11, 9, 3)
    array = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    (tmp_path / "f.png").write_bytes(_filtered_png(array, 0 if channels == 1 else 2))
    read = read_label if channels == 1 else read_rgb
    np.testing.assert_array_equal(read(tmp_path / "f.png"), array)


def test_palette_label_gives_indices_not_colours(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 150]], np.uint8)
    palette = bytes(np.random.default_rng(3).integers(0, 256, 256 * 3, dtype=np.uint8))
    (tmp_path / "p.png").write_bytes(_filtered_png(idx, 3, palette))
    np.testing.assert_array_equal(read_label(tmp_path / "p.png"), idx)
    pal = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), pal[idx])


def test_colour_label_is_refused(tmp_path: Path) -> None:
    write_png(tmp_path / "c.png", np.random.default_rng(4).integers(0, 256, (3, 3, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"c\.png is a colour image"):
        read_label(tmp_path / "c.png")


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    write_png(tmp_path / "t.png", np.zeros((8, 8), np.uint8))
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[:40])
    with pytest.raises(DataError, match=r"t\.png is not a valid PNG"):
        read_label(tmp_path / "t.png")
