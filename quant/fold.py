"""Fold every Conv2d → BatchNorm2d pair into the conv before quantizing for deployment.

Why: the deployed graph has no BatchNorm after a conv (the ONNX pass ``fold_batchnorm`` and every int8 runtime fold
it), so weights quantized on the *unfolded* conv are not the weights that run — folding rescales each output
channel by γ/√(σ²+ε) after the quantizer chose its grid. Quantizing the folded model makes the table's integers
exactly the deployed ones. The folded copy keeps every conv's module path (the BN becomes ``nn.Identity``), so a
table row still names the conv, and it is marked so that a table and a model in different folding states can be
told apart (``folding_state``; ``api.apply_table`` refuses the mismatch).

Pairs are found by data flow, not by names: one forward with hooks records which BatchNorm2d receives a Conv2d's
output tensor itself (TopFormer's ``Conv2d_BN``, mmcv's ``ConvModule``, CAS-ViT's stem and patch embeddings).
BatchNorms before a conv (CAS-ViT's pre-norms) are left alone. The folded model is checked against the original
on the same input, so a conv output that also fed something besides its BN cannot be folded silently.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._pytree import tree_leaves

FOLDED_ATTR = "bn_folded_convs"  # set on the folded model's root: the module paths of the convs that absorbed a BN
_CHECK_RTOL = 1e-4


def _example_input(model: nn.Module) -> torch.Tensor:
    info = getattr(model, "info", None)
    size = max(64, getattr(info, "input_multiple", 1))
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def conv_bn_pairs(model: nn.Module, example: torch.Tensor | None = None) -> list[tuple[str, str]]:
    """(conv path, bn path) for every BatchNorm2d whose input is a Conv2d's output, in execution order."""
    conv_out: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keeps outputs alive so their ids are not reused during the pass
    pairs: list[tuple[str, str]] = []
    handles = []

    def on_conv(path: str):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            conv_out[id(out)] = path
            keep.append(out)
        return hook

    def on_bn(path: str):
        def hook(m: nn.Module, inp: tuple) -> None:
            conv = conv_out.get(id(inp[0]))
            conv_module = model.get_submodule(conv) if conv is not None else None
            if conv_module is not None and conv_module.out_channels == m.num_features and \
                    (conv, path) not in pairs:
                pairs.append((conv, path))
        return hook

    for path, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(on_conv(path)))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(on_bn(path)))
    try:
        with torch.no_grad():
            model(example if example is not None else _example_input(model))
    finally:
        for h in handles:
            h.remove()
    return pairs


def set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the module at ``path`` (dotted, as ``named_modules`` gives it) by ``new``."""
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """A deep copy in eval mode with every Conv2d → BatchNorm2d pair folded into the conv (a bias is added where
    the conv had none) and the BatchNorm replaced by ``nn.Identity``; conv module paths are unchanged.

    ``example``: the input for the data-flow pass and the check (default: 1×3×S×S noise, S the model's input
    multiple or 64). Raises ``RuntimeError`` if the folded model does not reproduce the original."""
    out = copy.deepcopy(model).eval()
    x = example if example is not None else _example_input(out)
    with torch.no_grad():
        ref = out(x)
    pairs = conv_bn_pairs(out, x)
    uses = [conv for conv, _ in pairs]
    pairs = [(c, b) for c, b in pairs if uses.count(c) == 1]  # a conv feeding two BNs cannot absorb both
    for conv_path, bn_path in pairs:
        set_submodule(out, conv_path, fuse_conv_bn_eval(out.get_submodule(conv_path), out.get_submodule(bn_path)))
        set_submodule(out, bn_path, nn.Identity())
    setattr(out, FOLDED_ATTR, tuple(c for c, _ in pairs))
    with torch.no_grad():
        err = _max_rel_diff(ref, out(x))
    if err > _CHECK_RTOL:
        raise RuntimeError(f"folding BatchNorm into convs changed the output (relative max diff {err:.1e}); "
                           "a conv output feeds its BatchNorm and something else")
    return out


def _max_rel_diff(ref: object, got: object) -> float:
    pairs = zip(tree_leaves(ref), tree_leaves(got), strict=True)
    return max(float((a - b).abs().max()) / max(float(a.abs().max()), 1e-12) for a, b in pairs)


def folding_state(model: nn.Module) -> bool | None:
    """True: made by ``fold_batchnorm`` and at least one BN was folded; False: has BatchNorm2d and was not folded;
    None: nothing to fold either way (no BatchNorm2d, or folding found no pair), so any table fits."""
    folded = getattr(model, FOLDED_ATTR, None)
    if folded is not None:
        return True if folded else None
    return False if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) else None
