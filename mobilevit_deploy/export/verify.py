"""Compare an ONNX file run by ONNX Runtime with the PyTorch model on fixed seeded inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Agreement:
    """How closely two outputs agree: max |a-b| / max |ref|, and argmax agreement over the class axis (dim 1)."""

    rel_max_diff: float
    argmax_agreement: float

    def ok(self, rel_tol: float = 1e-4, min_agreement: float = 1.0) -> bool:
        return self.rel_max_diff <= rel_tol and self.argmax_agreement >= min_agreement


def compare_outputs(out: np.ndarray, ref: np.ndarray) -> Agreement:
    """Relative max diff and the fraction of positions (pixels, or images) whose argmax over dim 1 agrees."""
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from reference {ref.shape}")
    scale = float(np.abs(ref).max()) or 1.0
    rel = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max()) / scale
    agree = float((out.argmax(axis=1) == ref.argmax(axis=1)).mean())
    return Agreement(rel, agree)


def seeded_image_batch(input_size: int, seed: int = 0) -> np.ndarray:
    """A fixed normalized-image-like input (standard normal), the same on every machine."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, input_size, input_size, generator=gen).numpy()


def run_onnxruntime(model: str | Path | bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an ONNX file (or serialized model) on the CPU with ONNX Runtime and return its first output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]
