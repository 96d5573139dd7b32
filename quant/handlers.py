"""Handlers for the built-in configs: each turns its config into a ``calibrate.Plan`` (what goes where).

Contract (``registry``): ``handler(model, config, calib) -> QuantTable`` where ``calib`` is a ``Calibration``
(sites + captured FP samples, made once by ``api.quantize``); the fake-quant model is then built from the table,
so a saved table reproduces the same forward.
"""

from __future__ import annotations

from torch import nn

from .calibrate import Plan, build_table
from .capture import Calibration
from .config import AdaLogConfig, Log2Config, QuantConfig, SULQConfig, UniformConfig
from .enums import QuantKind, RangeMethod
from .registry import register_quant_handler
from .table import QuantTable


def _run(config: QuantConfig, calib: Calibration, plan: Plan) -> QuantTable:
    return build_table(calib.sites, calib.captured, config, plan, calib.progress)


@register_quant_handler(UniformConfig)
def quantize_uniform_config(model: nn.Module, config: UniformConfig, calib: Calibration) -> QuantTable:
    """Uniform everywhere, post-Softmax included (the baseline)."""
    plan = Plan(QuantKind.UNIFORM_ASYM, None, config.range_method is RangeMethod.FPCS,
                config.symmetric_weights, config.symmetric_acts)
    return _run(config, calib, plan)


@register_quant_handler(Log2Config)
def quantize_log2_config(model: nn.Module, config: Log2Config, calib: Calibration) -> QuantTable:
    """Log2 (scale 1) on post-Softmax, optionally on post-GELU; uniform elsewhere."""
    plan = Plan(QuantKind.LOG2, QuantKind.LOG2 if config.log2_post_gelu else None,
                config.range_method is RangeMethod.FPCS, config.symmetric_weights)
    return _run(config, calib, plan)


@register_quant_handler(AdaLogConfig)
def quantize_adalog_config(model: nn.Module, config: AdaLogConfig, calib: Calibration) -> QuantTable:
    """AdaLog on post-Softmax and post-GELU, asymmetric uniform elsewhere; FPCS unless another range method is
    asked for (the log points are always searched: they have no closed-form range, §4.4)."""
    plan = Plan(QuantKind.ADALOG, QuantKind.ADALOG, config.range_method is RangeMethod.FPCS, config.symmetric_weights)
    return _run(config, calib, plan)


@register_quant_handler(SULQConfig)
def quantize_sulq_config(model: nn.Module, config: SULQConfig, calib: Calibration) -> QuantTable:
    """SULQ on post-Softmax only; uniform elsewhere, post-GELU included (I&S-ViT, §5.1)."""
    plan = Plan(QuantKind.SULQ, None, config.range_method is RangeMethod.FPCS, config.symmetric_weights)
    return _run(config, calib, plan)
