"""Parameter and MAC counts, computed on the meta device so listing the zoo costs no memory and little time."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Learnable parameters (BatchNorm running statistics are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int | tuple[int, int]) -> int:
    """Multiply-accumulates of convolutions and matmuls for one image, counted by torch's flop counter (flops/2)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    device = next(model.parameters()).device
    x = torch.empty(1, 3, h, w, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2
