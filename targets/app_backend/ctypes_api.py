"""libmvdseg from Python through ctypes: what the tests and the benchmark call, mirroring the C API one to one.

Load it in a process that has not imported the ``tvm`` or ``executorch`` Python packages: those carry their own
copies of the runtime, and two copies of TVM's global registry in one process do not mix.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_U8P = ctypes.POINTER(ctypes.c_uint8)
_F32P = ctypes.POINTER(ctypes.c_float)


class MvdTimings(ctypes.Structure):
    _fields_ = [("preprocess_ms", ctypes.c_double), ("inference_ms", ctypes.c_double),
                ("postprocess_ms", ctypes.c_double)]


class MvdOptions(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int), ("verify_checksums", ctypes.c_int)]


class NativeError(Exception):
    """A non-zero mvd_status, with its name and the library's message."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.status, self.name, self.message = status, name, message


@dataclass(frozen=True)
class Segmentation:
    labels: np.ndarray  # H x W uint8
    colors: np.ndarray | None  # H x W x 4 uint8
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


def load_library(path: str | Path) -> ctypes.CDLL:
    """Open libmvdseg.so and declare the C API's signatures."""
    lib = ctypes.CDLL(str(path))
    sig = {
        "mvd_default_options": (None, [ctypes.POINTER(MvdOptions)]),
        "mvd_open_with_options": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(MvdOptions),
                                                 ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]),
        "mvd_segment_rgba": (ctypes.c_int, [ctypes.c_void_p, _U8P, ctypes.c_int, ctypes.c_int, ctypes.c_int, _U8P,
                                            _U8P, ctypes.POINTER(MvdTimings)]),
        "mvd_segment_nv21": (ctypes.c_int, [ctypes.c_void_p, _U8P, ctypes.c_int, ctypes.c_int, ctypes.c_int, _U8P,
                                            _U8P, ctypes.POINTER(MvdTimings)]),
        "mvd_preprocess_rgba": (ctypes.c_int, [_U8P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                               ctypes.c_int, _F32P, _F32P, _F32P]),
        "mvd_logits_to_labels": (ctypes.c_int, [_F32P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                ctypes.c_int, _U8P]),
        "mvd_resize_logits": (ctypes.c_int, [_F32P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                             ctypes.c_int, _F32P]),
        "mvd_last_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "mvd_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "mvd_close": (None, [ctypes.c_void_p]),
        "mvd_num_classes": (ctypes.c_int, [ctypes.c_void_p]),
        "mvd_class_name": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
        "mvd_input_width": (ctypes.c_int, [ctypes.c_void_p]),
        "mvd_input_height": (ctypes.c_int, [ctypes.c_void_p]),
        "mvd_runtime": (ctypes.c_char_p, []),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def _ptr(array: np.ndarray | None, kind: type = _U8P) -> ctypes._Pointer | None:
    return None if array is None else array.ctypes.data_as(kind)


def _check(lib: ctypes.CDLL, status: int, handle: ctypes.c_void_p | None) -> None:
    if status != 0:
        message = (lib.mvd_last_error(handle) or b"").decode()
        raise NativeError(status, lib.mvd_status_name(status).decode(), message)


def preprocess_rgba(lib: ctypes.CDLL, rgba: np.ndarray, size: tuple[int, int], mean: tuple[float, ...],
                    std: tuple[float, ...]) -> np.ndarray:
    """The library's 1 x 3 x H x W model input for an H' x W' x 4 frame (``size`` = (H, W))."""
    frame = np.ascontiguousarray(rgba, dtype=np.uint8)
    out = np.empty((1, 3, *size), np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    _check(lib, lib.mvd_preprocess_rgba(_ptr(frame), frame.shape[1], frame.shape[0], frame.strides[0], size[0],
                                        size[1], _ptr(m, _F32P), _ptr(s, _F32P), _ptr(out, _F32P)), None)
    return out


def logits_to_labels(lib: ctypes.CDLL, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The library's resize + argmax of 1 x C x h x w logits to ``size`` (H, W)."""
    x = np.ascontiguousarray(logits, dtype=np.float32)
    labels = np.empty(size, np.uint8)
    _check(lib, lib.mvd_logits_to_labels(_ptr(x, _F32P), x.shape[1], x.shape[2], x.shape[3], size[0], size[1],
                                         _ptr(labels)), None)
    return labels


def resize_logits(lib: ctypes.CDLL, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The library's resized logits (1 x C x H x W float32), the values its argmax sees."""
    x = np.ascontiguousarray(logits, dtype=np.float32)
    out = np.empty((1, x.shape[1], *size), np.float32)
    _check(lib, lib.mvd_resize_logits(_ptr(x, _F32P), x.shape[1], x.shape[2], x.shape[3], size[0], size[1],
                                      _ptr(out, _F32P)), None)
    return out


class NativeSegmenter:
    """One mvd_segmenter handle (use it from one thread at a time)."""

    def __init__(self, lib: ctypes.CDLL, bundle: str | Path, num_threads: int = 0, verify_checksums: bool = True):
        self.lib = lib
        options = MvdOptions()
        lib.mvd_default_options(ctypes.byref(options))
        options.num_threads, options.verify_checksums = num_threads, int(verify_checksums)
        handle, err = ctypes.c_void_p(), ctypes.create_string_buffer(1024)
        status = lib.mvd_open_with_options(str(bundle).encode(), ctypes.byref(options), ctypes.byref(handle), err,
                                           len(err))
        if status != 0:
            raise NativeError(status, lib.mvd_status_name(status).decode(), err.value.decode())
        self.handle = handle

    @property
    def num_classes(self) -> int:
        return self.lib.mvd_num_classes(self.handle)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.lib.mvd_input_height(self.handle), self.lib.mvd_input_width(self.handle)

    def class_name(self, index: int) -> str | None:
        name = self.lib.mvd_class_name(self.handle, index)
        return None if name is None else name.decode()

    def segment_rgba(self, rgba: np.ndarray, colors: bool = False, stride: int | None = None,
                     width: int | None = None) -> Segmentation:
        """An H x W x 4 uint8 frame -> labels (+ colours) and timings; ``width`` < W reads a padded buffer whose
        rows are ``stride`` bytes apart."""
        frame = np.ascontiguousarray(rgba, dtype=np.uint8)
        h = frame.shape[0]
        w = frame.shape[1] if width is None else width
        return self._segment(self.lib.mvd_segment_rgba, frame, w, h, stride or frame.strides[0], colors)

    def segment_nv21(self, nv21: np.ndarray, width: int, height: int, colors: bool = False,
                     stride: int | None = None) -> Segmentation:
        return self._segment(self.lib.mvd_segment_nv21, nv21, width, height, stride or width, colors)

    def _segment(self, fn: ctypes._CFuncPtr, frame: np.ndarray, width: int, height: int, stride: int,
                 colors: bool) -> Segmentation:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        labels = np.zeros((max(height, 0), max(width, 0)), np.uint8)
        rgba = np.zeros((max(height, 0), max(width, 0), 4), np.uint8) if colors else None
        t = MvdTimings()
        _check(self.lib, fn(self.handle, _ptr(frame), width, height, stride, _ptr(labels), _ptr(rgba),
                            ctypes.byref(t)), self.handle)
        return Segmentation(labels, rgba, t.preprocess_ms, t.inference_ms, t.postprocess_ms)

    def close(self) -> None:
        if self.handle:
            self.lib.mvd_close(self.handle)
            self.handle = ctypes.c_void_p()

    def __enter__(self) -> NativeSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
