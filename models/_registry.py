"""The model registry: each family file registers its variants as tiny functions holding only hyperparameters.

``create_model`` looks a name up, builds the model with the variant's defaults (overrides that are ``None`` are
dropped so CLI defaults never override model defaults), loads an official checkpoint if given, and returns it in
eval mode with its ``ModelInfo`` attached as ``model.info``.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilevit_deploy.errors import InputSizeError, UnknownModelError

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class Task(enum.Enum):
    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"


@dataclass(frozen=True)
class ModelInfo:
    """What a user and a bundle need to know about a registered variant, without building it."""

    name: str
    family: str
    task: Task
    default_input_size: int
    num_classes: int
    input_multiple: int
    """Height and width must be multiples of this (TopFormer's pyramid pooling needs 64)."""
    output_stride: int
    """Logits come out at input_size / output_stride (segmentation); 0 for classifiers."""
    checkpoint_format: str
    paper: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def check_input_size(self, height: int, width: int | None = None) -> None:
        """Raise ``InputSizeError`` naming the nearest sizes this model can take."""
        width = height if width is None else width
        m = self.input_multiple
        for side in (height, width):
            if side < m or side % m:
                lower = max(m, side // m * m)
                upper = lower + m if lower < side else lower
                raise InputSizeError(
                    f"{self.name} cannot take input size {height}x{width}: height and width must be multiples of {m}",
                    hint=f"use e.g. {lower}" + (f" or {upper}" if upper != lower else ""),
                )


Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[ModelInfo, Builder]] = {}


def register_model(**info: Any) -> Callable[[Builder], Builder]:
    """Register a variant's builder under its function name; returns the builder unchanged."""

    def decorator(fn: Builder) -> Builder:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = (ModelInfo(name=name, **info), fn)
        return fn

    return decorator


def list_models(pattern: str = "*", task: Task | None = None) -> list[str]:
    """Registered names matching a shell-style pattern, in registration order."""
    return [
        n for n, (i, _) in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (task is None or i.task is task)
    ]


def model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` of a registered name; unknown names raise with the closest names suggested."""
    try:
        return _REGISTRY[name][0]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `mvd models` to list them"
        raise UnknownModelError(f"unknown model {name!r}", hint=hint) from None


def create_model(
    name: str,
    num_classes: int | None = None,
    checkpoint: str | Path | None = None,
    strict: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model in eval mode, optionally loading an official-format checkpoint.

    Without a checkpoint the weights are the model's own initialization, seeded, so two calls give the same model.

    ``strict=False`` loads what matches (an ImageNet backbone into a segmenter) and records what was skipped in
    ``model.load_report``.
    """
    info = model_info(name)
    builder = _REGISTRY[name][1]
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    with torch.random.fork_rng(devices=[]):  # random weights are reproducible and leave the caller's RNG alone
        torch.manual_seed(0)
        model = builder(num_classes=num_classes or info.num_classes, **kwargs)
    model.info = info
    model.load_report = None
    if checkpoint is not None:
        from ._checkpoint import load_checkpoint

        model.load_report = load_checkpoint(model, checkpoint, strict=strict, model_name=name)
    return model.eval()
