"""I-ViT integer-only kernels (Li & Gu, ICCV 2023; reference/models_and_quantizers.md §3.2) in true integer
arithmetic: int8/int32/int64 tensors in, integer tensors out, no float inside a kernel.

Parameters derived from float scales (``exp_x0``, ``gelu_x0``, ``dyadic_from_ratio``, ``layernorm_bias_int``)
are computed once at conversion time, in float64, exactly as the official code derives them.
"""

from .dyadic import Dyadic, dyadic_from_ratio, requantize, requantize_add
from .layernorm import int_layernorm, isqrt_newton, layernorm_bias_int, layernorm_output_scale
from .linear import int_linear, int_matmul, int_patch_embed, int_prob_matmul, patchify
from .shift_exp import exp_x0, shift_exp
from .shiftgelu import fit_lambda, gelu_x0, shiftgelu
from .shiftmax import fit_shiftmax, logit_scale, shiftmax

__all__ = [
    "Dyadic",
    "dyadic_from_ratio",
    "exp_x0",
    "fit_lambda",
    "fit_shiftmax",
    "gelu_x0",
    "int_layernorm",
    "int_linear",
    "int_matmul",
    "int_patch_embed",
    "int_prob_matmul",
    "isqrt_newton",
    "layernorm_bias_int",
    "layernorm_output_scale",
    "logit_scale",
    "patchify",
    "requantize",
    "requantize_add",
    "shift_exp",
    "shiftgelu",
    "shiftmax",
]
