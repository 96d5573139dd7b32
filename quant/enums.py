"""The typed choices shared by configs, primitives and the quantization table (strings only at the JSON edge)."""

from __future__ import annotations

from enum import StrEnum


class QuantKind(StrEnum):
    """Which quantizer a quantization point uses; the table stores ``.value``."""

    UNIFORM_SYM = "uniform_sym"
    UNIFORM_ASYM = "uniform_asym"
    LOG2 = "log2"
    ADALOG = "adalog"
    SULQ = "sulq"


class RangeMethod(StrEnum):
    """How a uniform quantizer's clipping range is chosen (see ``primitives.choose_range`` and ``search.fpcs``)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    MSE = "mse"
    FPCS = "fpcs"  # needs a layer objective, so it runs in calibration, not in ``choose_range``


class SULQSteps(StrEnum):
    """Number of log-domain steps Δ divides ``[min, max]`` into for SULQ (models_and_quantizers.md §5.1).

    ``PAPER``: Δ = (max − min)/(2^B − 1), indices clipped to [0, 2^B − 1] — the paper's formula and the official
    code's *calibration* (η search); indices fit in B bits.
    ``CODE_FORWARD``: Δ = (max − min)/2^B, indices clipped to [0, 2^B] — what the official ``forward`` runs after
    calibration; 2^B + 1 levels, so the indices need B + 1 bits.
    """

    PAPER = "paper"
    CODE_FORWARD = "code_forward"
