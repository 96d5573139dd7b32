"""Handlers for the built-in configs. Stubs for now: calibration over models comes with issue 7's quantize() step.

Contract for the real ones: ``handler(model, config, calib) -> (fake-quant model, QuantTable)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import torch

from .config import AdaLogConfig, Log2Config, QuantConfig, SULQConfig, UniformConfig
from .registry import register_quant_handler

_PENDING = "calibration wiring comes with the quantize() step of issue 7"


@register_quant_handler(UniformConfig)
@register_quant_handler(Log2Config)
@register_quant_handler(AdaLogConfig)
@register_quant_handler(SULQConfig)
def _not_wired_yet(model: torch.nn.Module, config: QuantConfig, calib: Iterable[torch.Tensor]) -> NoReturn:
    raise NotImplementedError(f"{type(config).__name__}: {_PENDING}")
