"""PyTorch custom ops that carry a quantization point through ``torch.onnx.export`` unchanged.

``mvd_qdq::quantize(x, spec)`` returns the integers of ``quant.fake_quant.quantize_point`` and
``mvd_qdq::dequantize(q, spec)`` their float values (``dequantize_point``), so a model built from them computes
exactly what the fake-quant model computes; ``mvd_qdq::dequantize_bias`` does the same for an int32 bias.
``spec`` is the point's table row as JSON (plus the tensor rank), so the exporter's translation (``onnx_ops``)
reads the very parameters the table holds; nothing is re-derived.

Integer dtypes follow the ONNX graph: uniform asymmetric codes are uint8, symmetric ones int8 (QuantizeLinear's
output types), log-domain indices int32.
"""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from mobilevit_deploy.quant.enums import QuantKind
from mobilevit_deploy.quant.fake_quant import dequantize_point, quantize_point
from mobilevit_deploy.quant.granularity import PerChannel, PerHead
from mobilevit_deploy.quant.table import QuantPoint

NAMESPACE = "mvd_qdq"


def point_spec(point: QuantPoint, shape: tuple[int, ...] | torch.Size) -> str:
    """``point`` as the JSON an op carries, for a tensor of ``shape``: the axis made non-negative and a PerHead
    point written as the equivalent per-channel one (each head's scale repeated over its channels), because ONNX
    has one per-axis form only."""
    row = point.to_json()
    g = point.granularity
    if isinstance(g, PerChannel | PerHead):
        axis = g.axis % len(shape)
        row["granularity"] = {"type": "per_channel", "axis": axis}
        if isinstance(g, PerHead):
            repeat = shape[axis] // g.num_heads
            row["scale"] = [s for s in point.scale for _ in range(repeat)]
            row["zero_point"] = [z for z in point.zero_point for _ in range(repeat)]
    row["rank"] = len(shape)
    return json.dumps(row)


@lru_cache(maxsize=4096)
def parse_spec(spec: str) -> tuple[QuantPoint, int]:
    """The point and tensor rank of a ``point_spec`` string."""
    row = json.loads(spec)
    rank = row.pop("rank")
    return QuantPoint.from_json(row), rank


def code_dtype(point: QuantPoint) -> torch.dtype:
    """The integer type ``quantize`` returns for ``point``."""
    if point.kind is QuantKind.UNIFORM_ASYM:
        return torch.uint8
    if point.kind is QuantKind.UNIFORM_SYM:
        return torch.int8
    return torch.int32


@torch.library.custom_op(f"{NAMESPACE}::quantize", mutates_args=())
def quantize(x: torch.Tensor, spec: str) -> torch.Tensor:
    """The integers of ``x`` at the point ``spec`` (``quantize_point``), in ``code_dtype``."""
    point, _ = parse_spec(spec)
    return quantize_point(x, point).to(code_dtype(point))


@quantize.register_fake
def _(x: torch.Tensor, spec: str) -> torch.Tensor:
    return torch.empty(x.shape, dtype=code_dtype(parse_spec(spec)[0]), device=x.device)


@torch.library.custom_op(f"{NAMESPACE}::dequantize", mutates_args=())
def dequantize(q: torch.Tensor, spec: str) -> torch.Tensor:
    """Float32 values of ``quantize``'s integers (``dequantize_point``; a folded post-GELU shift stays folded)."""
    point, _ = parse_spec(spec)
    return dequantize_point(q.to(torch.int32), point)


@dequantize.register_fake
def _(q: torch.Tensor, spec: str) -> torch.Tensor:
    return torch.empty(q.shape, dtype=torch.float32, device=q.device)


@torch.library.custom_op(f"{NAMESPACE}::dequantize_bias", mutates_args=())
def dequantize_bias(codes: torch.Tensor, scale: list[float]) -> torch.Tensor:
    """An int32 bias (codes of s_x·s_w per output channel, ``quant.fake_quant.quantize_bias``) as float32."""
    return codes.to(torch.float32) * torch.tensor(scale, dtype=torch.float32)


@dequantize_bias.register_fake
def _(codes: torch.Tensor, scale: list[float]) -> torch.Tensor:
    return torch.empty(codes.shape, dtype=torch.float32, device=codes.device)


def fake_quant(x: torch.Tensor, point: QuantPoint) -> torch.Tensor:
    """``dequantize(quantize(x))`` through the custom ops (what an export module calls for an activation)."""
    spec = point_spec(point, x.shape)
    return torch.ops.mvd_qdq.dequantize(torch.ops.mvd_qdq.quantize(x, spec), spec)
