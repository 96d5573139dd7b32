"""Calibration for the integer-only Segmenter: the largest |value| of every tensor the integer model stores.

One float forward per batch with hooks (the ops are modules, DESIGN.md seam). Symmetric max-abs ranges are what
I-ViT's ``QuantAct`` computes (its EMA equals the max for one pass). Rows of the fc1 outputs and of the attention
logits are also sampled, to fit λ-ShiftGELU's λ and Shiftmax's (x0, n) per layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

SAMPLE_ROWS = 256  # rows kept per layer for fitting λ (fc1 outputs) and Shiftmax's (x0, n) (attention logits)


@dataclass
class Ranges:
    """max |x| per point (module path, ``<path>.in`` for a block's input, ``<path>.q/.k/.v`` for qkv thirds)."""

    maxabs: dict[str, float] = field(default_factory=dict)
    gelu_samples: dict[str, torch.Tensor] = field(default_factory=dict)
    logit_samples: dict[str, torch.Tensor] = field(default_factory=dict)
    images: int = 0

    def update(self, key: str, value: torch.Tensor) -> None:
        self.maxabs[key] = max(self.maxabs.get(key, 0.0), float(value.detach().abs().max()))

    def __getitem__(self, key: str) -> float:
        try:
            return self.maxabs[key]
        except KeyError:
            raise KeyError(f"no calibration range for {key!r}: did that module run?") from None


def _sample(store: dict[str, torch.Tensor], path: str, t: torch.Tensor) -> None:
    """Keep an evenly strided subset of the rows (last dim) seen so far, at most ``SAMPLE_ROWS``."""
    rows = t.detach().reshape(-1, t.shape[-1])
    kept = torch.cat([store.get(path, rows[:0]), rows[:: max(1, len(rows) // 64)]])
    store[path] = kept[-SAMPLE_ROWS:]


def _is_tracked(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm | nn.Linear | nn.GELU) or type(module).__name__ in ("MatMul", "Add")


def collect_ranges(model: nn.Module, batches: Iterable[torch.Tensor]) -> Ranges:
    """Run ``model`` (a float ``Segmenter``) over ``batches`` and record the range of every tracked tensor."""
    ranges = Ranges()
    handles = []

    def on_output(path: str, module: nn.Module):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if path.endswith("attn.qkv"):
                for name, part in zip("qkv", out.chunk(3, dim=-1), strict=True):
                    ranges.update(f"{path}.{name}", part)
            else:
                ranges.update(path, out)
            if path.endswith("mlp.fc1"):
                _sample(ranges.gelu_samples, path, out)
        return hook

    def on_softmax(path: str):
        def hook(_m: nn.Module, inp: tuple, _out: torch.Tensor) -> None:
            _sample(ranges.logit_samples, path, inp[0])
        return hook

    def on_block_input(path: str):
        def hook(_m: nn.Module, inp: tuple) -> None:
            ranges.update(f"{path}.in", inp[0])
        return hook

    for path, module in model.named_modules():
        if _is_tracked(module):
            handles.append(module.register_forward_hook(on_output(path, module)))
        if isinstance(module, nn.Softmax):
            handles.append(module.register_forward_hook(on_softmax(path)))
        if type(module).__name__ == "Block":
            handles.append(module.register_forward_pre_hook(on_block_input(path)))
    try:
        with torch.no_grad():
            for batch in batches:
                ranges.update("input", batch)
                model(batch)
                ranges.images += batch.shape[0]
    finally:
        for h in handles:
            h.remove()
    return ranges
