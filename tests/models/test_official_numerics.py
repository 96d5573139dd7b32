"""Our models against the official implementations.

``tests/data/official`` holds, per model, the official state-dict keys and shapes and the official model's output
for deterministic weights (see its README). Loading those keys strictly proves the names; matching the outputs
proves the numerics. The tests below the golden ones pin the details that decide them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobilevit_deploy.models import create_model, list_models
from support.paths import OFFICIAL_DATA
from support.synthetic_checkpoints import read_key_shapes, seeded_input, synthetic_state_dict


def _official_state(name: str) -> dict[str, torch.Tensor]:
    return synthetic_state_dict(read_key_shapes(OFFICIAL_DATA / f"{name}.keys.tsv"), seed=0)


def _rel_diff(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", list_models())
def test_official_keys_and_shapes_are_ours(name: str) -> None:
    official = read_key_shapes(OFFICIAL_DATA / f"{name}.keys.tsv")
    ours = [(k, tuple(v.shape)) for k, v in create_model(name).state_dict().items()]
    assert ours == official


@pytest.mark.parametrize("name", list_models())
def test_outputs_equal_the_official_implementation(name: str) -> None:
    model = create_model(name)
    model.load_state_dict(_official_state(name), strict=True)
    golden = np.load(OFFICIAL_DATA / f"{name}.golden.npz")
    x = seeded_input(tuple(int(d) for d in golden["input_shape"]), seed=1)
    assert float(x.double().sum()) == pytest.approx(float(golden["input_sum"]), abs=1e-6), "torch RNG changed"
    with torch.no_grad():
        out = model(x).numpy()
    assert out.shape == golden["output"].shape
    assert _rel_diff(out, golden["output"]) <= 1e-4


def test_topformer_pyramid_pooling_equals_adaptive_pooling_at_192() -> None:
    """192 = 3·64: pooled windows of 3, 6, 12, 24 must match the official adaptive pooling exactly."""
    model = create_model("topformer_tiny")
    model.load_state_dict(_official_state("topformer_tiny"), strict=True)
    golden = np.load(OFFICIAL_DATA / "topformer_tiny.golden.npz")
    x = seeded_input((1, 3, 192, 192), seed=2)
    assert float(x.double().sum()) == pytest.approx(float(golden["input_sum_at_192"]), abs=1e-6)
    with torch.no_grad():
        out = model(x).numpy()
    assert _rel_diff(out, golden["output_at_192"]) <= 1e-4


def test_topformer_attention_is_not_scaled() -> None:
    """The official code defines key_dim**-0.5 but never applies it: softmax(q @ k) exactly."""
    model = create_model("topformer_tiny")
    attn = model.backbone.trans.transformer_blocks[0].attn
    captured = {}
    attn.softmax.register_forward_hook(lambda m, inp, out: captured.update(logits=inp[0], probs=out))
    q_hook = attn.to_q.register_forward_hook(lambda m, i, o: captured.update(q=o))
    k_hook = attn.to_k.register_forward_hook(lambda m, i, o: captured.update(k=o))
    with torch.no_grad():
        model(seeded_input((1, 3, 128, 128)))
    q_hook.remove(), k_hook.remove()
    b, _, h, w = captured["q"].shape
    q = captured["q"].reshape(b, attn.num_heads, attn.key_dim, h * w).transpose(-1, -2)
    k = captured["k"].reshape(b, attn.num_heads, attn.key_dim, h * w)
    torch.testing.assert_close(captured["logits"], q @ k)
    torch.testing.assert_close(captured["probs"], torch.softmax(q @ k, dim=-1))


def test_casvit_eval_output_is_the_mean_of_both_heads() -> None:
    model = create_model("casvit_xs")
    x = seeded_input((2, 3, 64, 64))
    with torch.no_grad():
        pooled = model.norm(model.forward_features(x)[-1]).mean(dim=(2, 3))
        expected = (model.head(pooled) + model.dist_head(pooled)) / 2
        torch.testing.assert_close(model(x), expected)
    model.train()
    cls_out, dist_out = model(x)
    assert cls_out.shape == dist_out.shape == (2, 1000)


@pytest.mark.parametrize("name", ["topformer_tiny", "casvit_xs_seg"])
def test_batchnorm_uses_running_statistics(name: str) -> None:
    """In eval mode an image's output does not depend on the rest of the batch."""
    model = create_model(name)
    model.load_state_dict(_official_state(name), strict=True)
    x = seeded_input((2, 3, 64 if "casvit" in name else 128, 64 if "casvit" in name else 128))
    with torch.no_grad():
        both = model(x)
        first = model(x[:1])
    torch.testing.assert_close(both[:1], first, rtol=1e-5, atol=1e-5)


def test_topformer_tiny_head_fuse_is_depthwise_only_for_tiny() -> None:
    assert create_model("topformer_tiny").decode_head.linear_fuse.conv.groups == 128
    assert create_model("topformer_small").decode_head.linear_fuse.conv.groups == 1
