"""Edge-graph rewrites that put every op of our models inside one XNNPACK delegate.

Each op XNNPACK does not take runs on ExecuTorch's single-threaded portable kernels and splits the delegate into
one more subgraph, with a copy at each boundary. These passes rewrite such ops, for the static input size of the
export, into ops XNNPACK takes and that compute the same numbers:

- ``expand_copy`` that does not change the shape (4-D ``matmul`` decomposes to expand → view → bmm even when
  the batch dims already match) is dropped: ExecuTorch's own ``RemoveNoopExpandCopyPass``, run before
  partitioning instead of only inside the delegate.
- ``split_with_sizes_copy`` (CAS-ViT's qkv ``chunk``, TopFormer's token split) becomes one ``slice_copy`` per
  piece: bit-identical copies of the same channels.
- ``upsample_nearest2d`` by an integer factor (the FPN's top-down path) becomes a broadcast multiply by ones
  between two reshapes: each output is ``1.0 * x`` exactly.
- ``_adaptive_avg_pool2d`` whose input divides evenly into its output becomes ``avg_pool2d`` with the fixed
  window it is equal to (the official TopFormer's pyramid pooling; same sums, possibly in another order).

Anything else (a non-integer nearest resize, an expand that really broadcasts) is left as it is and shows up in
``delegation_report`` / ``mvd check``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from executorch.backends.xnnpack._passes.remove_noop_expand_copy_pass import RemoveNoopExpandCopyPass
from executorch.exir.dialects._ops import ops as exir_ops
from executorch.exir.pass_base import (
    ExportedProgramPassBase,
    ExportedProgramPassResult,
    ExportPass,
    NodeMetadata,
    ProxyValue,
)
from executorch.exir.program._fake_program import get_fake_program
from torch._subclasses.fake_tensor import unset_fake_temporarily
from torch.export import ExportedProgram
from torch.fx.passes.infra.pass_base import PassResult

_SPLIT = exir_ops.edge.aten.split_with_sizes_copy.default  # chunk and split(int) decompose to it as well
_SLICE = exir_ops.edge.aten.slice_copy.Tensor
_NEAREST = exir_ops.edge.aten.upsample_nearest2d.vec
_VIEW = exir_ops.edge.aten.view_copy.default
_MUL = exir_ops.edge.aten.mul.Tensor
_ADAPTIVE_AVG = exir_ops.edge.aten._adaptive_avg_pool2d.default
_AVG_POOL = exir_ops.edge.aten.avg_pool2d.default


def _shape(value: ProxyValue) -> list[int]:
    return list(value.to_tensor().shape)


class SplitToSlicesPass(ExportPass):
    """``split`` → one ``slice_copy`` per output (XNNPACK has no split but takes static slices)."""

    def call_operator(self, op: Any, args: tuple, kwargs: dict, meta: NodeMetadata) -> Any:
        if op is not _SPLIT:
            return super().call_operator(op, args, kwargs, meta)
        x, sizes = args[0], args[1]
        dim = (args[2] if len(args) > 2 else kwargs.get("dim", 0)) % len(_shape(x))  # XNNPACK's slice: dim >= 0
        pieces, start = [], 0
        for size in sizes:
            pieces.append(super().call_operator(_SLICE, (x, dim, start, start + size, 1), {}, meta))
            start += size
        return pieces

    def call_getitem(self, value: Any, key: int, meta: NodeMetadata) -> Any:
        if isinstance(value, list):  # a split this pass replaced by its slices
            return value[key]
        return super().call_getitem(value, key, meta)

    def call(self, graph_module: torch.fx.GraphModule) -> PassResult:
        result = super().call(graph_module)
        result.graph_module.graph.eliminate_dead_code()  # slices for split outputs nobody reads
        result.graph_module.recompile()
        return result


def _integer_factors(small_hw: list[int], large_hw: list[int]) -> tuple[int, int] | None:
    """``large / small`` per spatial dim when both divide evenly, else ``None``."""
    if any(big % little for little, big in zip(small_hw, large_hw, strict=True)):
        return None
    return large_hw[0] // small_hw[0], large_hw[1] // small_hw[1]


class NearestUpsampleToMulPass(ExportPass):
    """Nearest ×(sh, sw) → ``view (N,C,H,1,W,1) * ones(1,1,1,sh,1,sw)`` → ``view (N,C,H·sh,W·sw)``.

    Every output element is ``x * 1.0``, so the result is bit-identical to nearest upsampling. Measured at the
    FPN's stride-4 size (256 channels, 64² → 128², one thread): this form costs what the portable kernel costs
    (~13 ms CPU), while a depthwise ``conv_transpose2d`` with an all-ones kernel, exact as well, took ~107 ms in
    XNNPACK, and a 5-D ``cat`` form is not delegated.
    """

    def call_operator(self, op: Any, args: tuple, kwargs: dict, meta: NodeMetadata) -> Any:
        if op is not _NEAREST:
            return super().call_operator(op, args, kwargs, meta)
        x = args[0]
        (n, c, h, w), out_shape = _shape(x), list(meta["val"].shape)
        factors = _integer_factors([h, w], out_shape[2:])
        if factors is None or factors == (1, 1):
            return super().call_operator(op, args, kwargs, meta)
        with unset_fake_temporarily():  # passes trace under FakeTensorMode; the ones must be a real constant
            ones = torch.ones(1, 1, 1, factors[0], 1, factors[1], dtype=meta["val"].dtype)
        spread = super().call_operator(_VIEW, (x, [n, c, h, 1, w, 1]), {}, meta)
        repeated = super().call_operator(_MUL, (spread, ones), {}, meta)
        return super().call_operator(_VIEW, (repeated, out_shape), {}, meta)


class AdaptiveAvgPoolToFixedPass(ExportPass):
    """``_adaptive_avg_pool2d`` to an output that divides the input → ``avg_pool2d`` with kernel = stride."""

    def call_operator(self, op: Any, args: tuple, kwargs: dict, meta: NodeMetadata) -> Any:
        if op is not _ADAPTIVE_AVG:
            return super().call_operator(op, args, kwargs, meta)
        factors = _integer_factors(list(meta["val"].shape)[2:], _shape(args[0])[2:])
        if factors is None:
            return super().call_operator(op, args, kwargs, meta)
        kernel = list(factors)  # no divisor_override argument at all: XNNPACK's config rejects an explicit None
        return super().call_operator(_AVG_POOL, (args[0], kernel, kernel, [0, 0], False, True), {}, meta)


def xnnpack_friendly_passes() -> list[ExportPass]:
    """The passes, in order, for ``to_edge_transform_and_lower(transform_passes=...)``."""
    return [RemoveNoopExpandCopyPass(), SplitToSlicesPass(), NearestUpsampleToMulPass(),
            AdaptiveAvgPoolToFixedPass()]


class RecordPartition(ExportedProgramPassBase):
    """A pass that changes nothing: it keeps a copy of the program tagged the way XNNPACK would partition it now.

    As the first of ``transform_passes`` it sees the edge program exactly as the lowering does (same
    decompositions), so "how many subgraphs without the rewrites" costs one partitioning (about a second) on a
    fake copy, not a second export and decomposition.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tagged: torch.fx.GraphModule | None = None

    def call(self, exported_program: ExportedProgram) -> ExportedProgramPassResult:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        result = XnnpackPartitioner().partition(get_fake_program(exported_program))
        self.tagged = result.tagged_exported_program.graph_module
        return ExportedProgramPassResult(exported_program, False)


def lowering_digest() -> str:
    """sha256 of the code that decides a ``.pte`` besides the model: these rewrites and ``build_executorch``.

    For artifact-cache keys: a cache filled before a rewrite changed would otherwise hand back the old program.
    """
    digest = hashlib.sha256()
    for name in ("executorch_passes.py", "executorch_target.py"):
        digest.update(name.encode() + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()
