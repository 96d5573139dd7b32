"""Quantization error metrics (torchao's ``compute_error``): tests and the fidelity report assert SQNR thresholds."""

from __future__ import annotations

import math

import torch


def sqnr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``20·log10(‖ref‖ / ‖ref − test‖)`` in dB, computed in float64.

    Identical tensors give +inf (no noise); a zero reference with a non-zero test gives −inf."""
    if ref.shape != test.shape:
        raise ValueError(f"sqnr_db: shapes differ, {tuple(ref.shape)} vs {tuple(test.shape)}")
    ref64, test64 = ref.detach().to(torch.float64), test.detach().to(torch.float64)
    noise = float(torch.linalg.vector_norm(ref64 - test64))
    if noise == 0.0:
        return math.inf
    signal = float(torch.linalg.vector_norm(ref64))
    if signal == 0.0:
        return -math.inf
    return 20.0 * math.log10(signal / noise)
