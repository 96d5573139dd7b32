"""Quantization configs: one frozen dataclass per scheme, validated on construction (the torchao pattern).

Bits are set separately for weights, activations and attention probabilities (post-Softmax), each in
``ALLOWED_BITS``. Granularity and range method are typed (``granularity.PerChannel(0)``, ``RangeMethod.MSE``),
never strings. Each config type gets its handler through ``registry.register_quant_handler``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .enums import RangeMethod, SULQSteps
from .errors import QuantConfigError
from .granularity import GRANULARITY_TYPES, PerChannel, PerHead, PerTensor
from .primitives import SULQ_ETAS

ALLOWED_BITS = (3, 4, 6, 8)
POST_GELU_SHIFT = 0.16997124254703522  # −min GELU: AdaLog quantizes x + shift ≥ 0 after GELU (§4.2)



def _is_allowed_bits(bits: object) -> bool:
    return isinstance(bits, int) and not isinstance(bits, bool) and bits in ALLOWED_BITS


_ALLOWED_GRANULARITY = {
    "weight_granularity": (PerTensor, PerChannel),
    "act_granularity": (PerTensor, PerChannel),
    "matmul_granularity": (PerTensor, PerChannel, PerHead),
}


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """Fields every scheme shares; subclasses add their own and call ``super().__post_init__()``."""

    weight_bits: int = 4
    act_bits: int = 4
    attn_bits: int = 4  # post-Softmax attention probabilities (AdaLog's s_bit)
    weight_granularity: PerTensor | PerChannel = field(default_factory=lambda: PerChannel(0))
    act_granularity: PerTensor | PerChannel = field(default_factory=PerTensor)
    matmul_granularity: PerTensor | PerChannel | PerHead = field(default_factory=PerTensor)  # q, k, v inputs
    range_method: RangeMethod = RangeMethod.MSE
    percentile: float = 0.9999  # used by RangeMethod.PERCENTILE
    first_last_bits: int | None = 8  # first and last Conv/Linear (weight + input); None = the bits above
    overrides: tuple[tuple[str, int], ...] = ()  # (module path, bits) for its weight and inputs; a dict is accepted
    skip: tuple[str, ...] = ()  # module paths left in float
    # weights on the symmetric grid [−(2^(B−1) − 1), 2^(B−1) − 1] with zero point 0, per output channel: what int8
    # kernels (XNNPACK, integer TVM) take; the default keeps the asymmetric grid of the AdaLog/I&S-ViT papers
    symmetric_weights: bool = False
    version: int = 1  # bump when a field's meaning changes, so saved configs can be migrated

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("weight_bits", "act_bits", "attn_bits"):
            bits = getattr(self, f)
            if not _is_allowed_bits(bits):
                raise QuantConfigError(f"{name}.{f}={bits!r} is not supported",
                                       hint=f"choose one of {', '.join(map(str, ALLOWED_BITS))}")
        for f, allowed in _ALLOWED_GRANULARITY.items():
            g = getattr(self, f)
            if not isinstance(g, GRANULARITY_TYPES):
                raise QuantConfigError(f"{name}.{f}={g!r} is not a granularity",
                                       hint="use quant.granularity.PerTensor(), PerChannel(axis) or PerHead(...)")
            if not isinstance(g, allowed):
                raise QuantConfigError(f"{name}.{f} cannot be {type(g).__name__}",
                                       hint=f"allowed: {', '.join(t.__name__ for t in allowed)}")
        if not isinstance(self.range_method, RangeMethod):
            raise QuantConfigError(f"{name}.range_method={self.range_method!r} is not a RangeMethod",
                                   hint=f"one of {', '.join('RangeMethod.' + m.name for m in RangeMethod)}")
        if not 0.5 <= self.percentile <= 1.0:
            raise QuantConfigError(f"{name}.percentile={self.percentile} must be in [0.5, 1]")
        if self.first_last_bits is not None and not _is_allowed_bits(self.first_last_bits):
            raise QuantConfigError(f"{name}.first_last_bits={self.first_last_bits!r} is not supported",
                                   hint=f"None or one of {', '.join(map(str, ALLOWED_BITS))}")
        overrides = self.overrides.items() if isinstance(self.overrides, dict) else self.overrides
        try:
            pairs = tuple((str(path), bits) for path, bits in overrides)
        except (TypeError, ValueError):
            raise QuantConfigError(f"{name}.overrides must map module paths to bits, got {self.overrides!r}") from None
        for path, bits in pairs:
            if not _is_allowed_bits(bits):
                raise QuantConfigError(f"{name}.overrides[{path!r}]={bits!r} is not supported",
                                       hint=f"choose one of {', '.join(map(str, ALLOWED_BITS))}")
        object.__setattr__(self, "overrides", pairs)
        object.__setattr__(self, "skip", tuple(self.skip))

    def to_dict(self) -> dict[str, object]:
        """Plain values for reports and metadata (granularity as its repr, enums as their value)."""
        out: dict[str, object] = {"type": type(self).__name__}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if hasattr(v, "value") else (repr(v) if isinstance(v, GRANULARITY_TYPES) else v)
        return out


@dataclass(frozen=True, kw_only=True)
class UniformConfig(QuantConfig):
    """Uniform quantization everywhere, post-Softmax included (the baseline every log quantizer is compared to)."""

    symmetric_acts: bool = False


@dataclass(frozen=True, kw_only=True)
class Log2Config(QuantConfig):
    """Uniform weights/activations; post-Softmax (and optionally post-GELU) with the base-2 log quantizer
    (scale 1 for Softmax, since probabilities are ≤ 1) — the bit-shift-only baseline for AdaLog."""

    log2_post_gelu: bool = False


@dataclass(frozen=True, kw_only=True)
class AdaLogConfig(QuantConfig):
    """AdaLog (§4.2-4.4): AdaLog on post-Softmax (scale 1, q searched) and post-GELU (shift, scale and q searched),
    asymmetric uniform elsewhere, FPCS search with a layer-output MSE objective."""

    range_method: RangeMethod = RangeMethod.FPCS
    matmul_granularity: PerTensor | PerChannel | PerHead = field(default_factory=lambda: PerChannel(1))
    q_min: int = 10  # q candidates q_min..q_max−1 (the official loop evaluates 10..137)
    q_max: int = 138
    eq_n: int = 128  # candidates per FPCS round
    search_rounds: int = 3  # alternate weight / activation searches
    fpcs_steps: int = 6
    post_gelu_shift: float = POST_GELU_SHIFT
    conv_input_bits: int = 8  # patch-embedding / stem conv input stays 8-bit (§4.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.q_min < self.q_max:
            raise QuantConfigError(f"AdaLogConfig q range [{self.q_min}, {self.q_max}) must be positive and non-empty")
        if self.eq_n < 2 or self.search_rounds < 0 or self.fpcs_steps < 1:
            raise QuantConfigError("AdaLogConfig needs eq_n ≥ 2, search_rounds ≥ 0 and fpcs_steps ≥ 1")
        if not _is_allowed_bits(self.conv_input_bits):
            raise QuantConfigError(f"AdaLogConfig.conv_input_bits={self.conv_input_bits!r} is not supported",
                                   hint=f"choose one of {', '.join(map(str, ALLOWED_BITS))}")


@dataclass(frozen=True, kw_only=True)
class SULQConfig(QuantConfig):
    """I&S-ViT (§5): SULQ on post-Softmax, uniform elsewhere (post-GELU included). ``sulq_steps`` selects the
    paper's 2^B − 1 log-domain steps (default) or the official forward's 2^B (see ``SULQSteps``)."""

    range_method: RangeMethod = RangeMethod.PERCENTILE
    etas: tuple[float, ...] = SULQ_ETAS
    sulq_steps: SULQSteps = SULQSteps.PAPER

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.etas or any(not isinstance(e, int | float) or e <= 0 for e in self.etas):
            raise QuantConfigError(f"SULQConfig.etas={self.etas!r} must be a non-empty tuple of positive numbers")
        if not isinstance(self.sulq_steps, SULQSteps):
            raise QuantConfigError(f"SULQConfig.sulq_steps={self.sulq_steps!r} is not a SULQSteps",
                                   hint="SULQSteps.PAPER or SULQSteps.CODE_FORWARD")
