"""Deterministic checkpoints built from key/shape lists, so tests never need fetched code or downloads.

The same fill rule produced the golden outputs in ``tests/data/official`` from the official implementations,
so a model that loads such a state dict and reproduces those outputs matches the official numerics.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

KeyShapes = list[tuple[str, tuple[int, ...]]]


def read_key_shapes(path: Path) -> KeyShapes:
    """Parse lines of ``key<TAB>d0,d1,...`` (an empty shape field is a scalar)."""
    rows: KeyShapes = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        key, _, dims = line.partition("\t")
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        rows.append((key, shape))
    return rows


def write_key_shapes(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state dict's keys and shapes, one ``key<TAB>shape`` line each, in state-dict order."""
    lines = [f"{k}\t{','.join(str(d) for d in v.shape)}" for k, v in state_dict.items()]
    Path(path).write_text("\n".join(lines) + "\n")


def synthetic_state_dict(key_shapes: KeyShapes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fill every key deterministically, in list order, from one seeded generator.

    Rules (chosen so that deep random networks neither explode nor collapse):
    - ``num_batches_tracked``: int64 zero;
    - ``running_var``: uniform in [0.5, 1.5]; ``running_mean``: N(0, 0.1);
    - 1-D ``weight`` (norm scale): 1 + N(0, 0.1); 1-D ``bias``: N(0, 0.1);
    - everything else (conv/linear weights): N(0, 1) * sqrt(0.5 / fan_in), fan_in = prod(shape[1:]) (half the
      variance-preserving gain, because CAS-ViT's mixer multiplies two branches and would otherwise overflow).
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in key_shapes:
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[key] = torch.zeros(shape, dtype=torch.int64)
        elif leaf == "running_var":
            out[key] = torch.rand(shape, generator=gen) + 0.5
        elif leaf == "running_mean":
            out[key] = torch.randn(shape, generator=gen) * 0.1
        elif len(shape) == 1 and leaf == "weight":
            out[key] = 1.0 + torch.randn(shape, generator=gen) * 0.1
        elif len(shape) <= 1:
            out[key] = torch.randn(shape, generator=gen) * 0.1
        else:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=gen) * math.sqrt(0.5 / fan_in)
    return out


def seeded_input(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """A reproducible image-like input (standard normal, as after ImageNet normalization)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))
