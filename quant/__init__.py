"""Post-training quantization for ViTs (uniform, log2, AdaLog, shift-uniform-log2): grows with issue 7."""

from . import handlers as _handlers  # noqa: F401  (registers the built-in config handlers)
from .config import ALLOWED_BITS, AdaLogConfig, Log2Config, QuantConfig, SULQConfig, UniformConfig
from .enums import QuantKind, RangeMethod, SULQSteps
from .errors import QuantConfigError, QuantTableError
from .fold import fold_batchnorm, folding_state
from .granularity import PerChannel, PerHead, PerTensor
from .metrics import sqnr_db
from .registry import get_quant_handler, register_quant_handler
from .search import FPCSOptions, FPCSResult, fpcs
from .table import QuantPoint, QuantTable, TensorRole

__all__ = [
    "ALLOWED_BITS",
    "AdaLogConfig",
    "FPCSOptions",
    "FPCSResult",
    "Log2Config",
    "PerChannel",
    "PerHead",
    "PerTensor",
    "QuantConfig",
    "QuantConfigError",
    "QuantKind",
    "QuantPoint",
    "QuantTable",
    "QuantTableError",
    "RangeMethod",
    "SULQConfig",
    "SULQSteps",
    "TensorRole",
    "UniformConfig",
    "fold_batchnorm",
    "folding_state",
    "fpcs",
    "get_quant_handler",
    "register_quant_handler",
    "sqnr_db",
]
