"""Find what to quantize in any model, by module type and by what feeds each input (issue 7 item 3).

Why a traced pass instead of name patterns: "post-Softmax" and "post-GELU" are data-flow facts. One forward with
hooks records which module produced each tensor (by object identity), so ``matmul_av``'s input A is known to be
the Softmax output and ``mlp.fc2``'s input the GELU output in any model whose ops are modules (DESIGN.md seam).
Targets: every ``nn.Conv2d`` / ``nn.Linear`` and every module whose class is named ``MatMul``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

MATMUL_CLASS_NAMES = ("MatMul",)
SOFTMAX_TYPES: tuple[type[nn.Module], ...] = (nn.Softmax,)
GELU_TYPES: tuple[type[nn.Module], ...] = (nn.GELU,)


@dataclass
class Site:
    """A quantizable module, in execution order; ``producers[i]`` is ``'softmax'``, ``'gelu'`` or ``None``."""

    path: str
    module: nn.Module
    order: int
    producers: list[str | None] = field(default_factory=list)

    @property
    def is_matmul(self) -> bool:
        return type(self.module).__name__ in MATMUL_CLASS_NAMES

    @property
    def is_layer(self) -> bool:
        return isinstance(self.module, nn.Conv2d | nn.Linear)


def is_target(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d | nn.Linear) or type(module).__name__ in MATMUL_CLASS_NAMES


def find_sites(model: nn.Module, example: torch.Tensor) -> list[Site]:
    """Run ``model(example)`` once with hooks; return the target modules in the order they first run."""
    produced: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # holds produced tensors alive so ids are not reused during the pass
    sites: dict[str, Site] = {}
    handles = []

    def on_output(kind: str):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if isinstance(out, torch.Tensor):
                produced[id(out)] = kind
                keep.append(out)
        return hook

    def on_input(path: str):
        def hook(m: nn.Module, inp: tuple) -> None:
            if path not in sites:
                sites[path] = Site(path, m, len(sites),
                                   [produced.get(id(t)) if isinstance(t, torch.Tensor) else None for t in inp])
        return hook

    for path, m in model.named_modules():
        if isinstance(m, SOFTMAX_TYPES):
            handles.append(m.register_forward_hook(on_output("softmax")))
        elif isinstance(m, GELU_TYPES):
            handles.append(m.register_forward_hook(on_output("gelu")))
        if is_target(m):
            handles.append(m.register_forward_pre_hook(on_input(path)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return sorted(sites.values(), key=lambda s: s.order)
