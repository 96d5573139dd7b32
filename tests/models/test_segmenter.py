"""(I-)Segmenter in the zoo: architecture arithmetic, the I-Segmenter switches, checkpoints, official numerics, export.

The generic zoo tests already pin the official keys and the I-Segmenter-form golden output
(``tests/models/test_official_numerics.py``) and export both variants at 64 px (``tests/export``); this file pins
what is specific to Segmenter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mobilevit_deploy.errors import InputSizeError
from mobilevit_deploy.export import export_onnx
from mobilevit_deploy.models import count_params, create_model, model_info
from mobilevit_deploy.models.segmenter import resize_pos_embed
from mobilevit_deploy.quant.sites import find_sites
from support.paths import OFFICIAL_DATA
from support.synthetic_checkpoints import read_key_shapes, seeded_input, synthetic_state_dict

VARIANTS = {"isegmenter_tiny": 192, "isegmenter_small": 384}  # embedding dim D; ViT-Ti/16 and ViT-S/16


def _expected_params(d: int, n_cls: int = 150, grid: int = 32, depth: int = 12, dec_layers: int = 2) -> int:
    """Parameters from the architecture alone (MLP 4·D, patch 16, 1000-class encoder head, 150 ADE20K classes)."""
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)  # 12D² + 13D
    encoder = d + (1 + grid * grid) * d + (3 * 16 * 16 * d + d) + depth * block + 2 * d + (1000 * d + 1000)
    decoder = n_cls * d + 2 * d * d + dec_layers * block + (d * d + d) + 2 * d + 2 * n_cls
    return encoder + decoder


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return create_model("isegmenter_tiny")


@pytest.mark.parametrize(("name", "dim"), VARIANTS.items())
def test_parameter_count_follows_from_the_architecture(name: str, dim: int) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert count_params(model) == _expected_params(dim)
    # measured on the official code (tests/data/official/README.md); its README rounds them to "7M" and "27M"
    assert count_params(model) == {"isegmenter_tiny": 6_906_388, "isegmenter_small": 26_418_964}[name]
    assert model.decoder.blocks[0].attn.heads == dim // 64 and len(model.decoder.blocks) == 2
    assert model.encoder.blocks[0].attn.heads == dim // 64 and len(model.encoder.blocks) == 12
    assert model.encoder.blocks[0].mlp.fc1.out_features == 4 * dim


def test_registry_info() -> None:
    info = model_info("isegmenter_tiny")
    assert (info.default_input_size, info.num_classes, info.input_multiple, info.output_stride) == (512, 150, 16, 1)
    assert info.mean == info.std == (127.5, 127.5, 127.5)  # Segmenter's "vit" normalization: (x/255 − 0.5) / 0.5


def test_shapes_and_nearest_upsampling(tiny: torch.nn.Module) -> None:
    x = seeded_input((2, 3, 64, 96))
    with torch.no_grad():
        masks = tiny.forward_masks(x)
        out = tiny(x)
    assert masks.shape == (2, 150, 4, 6)
    assert out.shape == (2, 150, 64, 96)
    # I-Segmenter: nearest upsampling is plain 16× replication of the patch-level masks
    assert torch.equal(out, masks.repeat_interleave(16, dim=-2).repeat_interleave(16, dim=-1))


def test_positional_embedding_is_resized_only_off_the_training_grid(tiny: torch.nn.Module) -> None:
    """512 px is the 32×32 grid the embedding was made for: used as is. Other grids are resized bilinearly."""
    pos = tiny.encoder.pos_embed
    assert resize_pos_embed(pos, (32, 32), (32, 32)) is pos
    resized = resize_pos_embed(pos, (32, 32), (4, 6))
    assert resized.shape == (1, 1 + 24, 192)
    assert torch.equal(resized[:, 0], pos[:, 0])  # the class token's embedding is never resized
    grid = pos[:, 1:].reshape(1, 32, 32, 192).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(4, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resized[0, 1:], expected.flatten(2)[0].T, rtol=0, atol=0)


def test_the_original_segmenter_matches_the_official_code() -> None:
    """``l2_norm=True, upsample="bilinear"`` is the official Segmenter; the I-Segmenter default differs from it."""
    state = synthetic_state_dict(read_key_shapes(OFFICIAL_DATA / "isegmenter_tiny.keys.tsv"), seed=0)
    golden = np.load(OFFICIAL_DATA / "isegmenter_tiny.golden.npz")
    x = seeded_input(tuple(int(d) for d in golden["input_shape"]), seed=1)
    original = create_model("isegmenter_tiny", l2_norm=True, upsample="bilinear")
    original.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = original(x)[..., ::5, ::5].numpy()
    ref = golden["output_segmenter_every_5th"]
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.abs(golden["output"][..., ::5, ::5] - ref).max() > 0.1, "the two forms must differ"


@pytest.mark.parametrize(("l2_norm", "upsample"), [(False, "bilinear"), (True, "nearest")])
def test_each_switch_alone_changes_the_output(tiny: torch.nn.Module, l2_norm: bool, upsample: str) -> None:
    other = create_model("isegmenter_tiny", l2_norm=l2_norm, upsample=upsample)
    assert other.state_dict().keys() == tiny.state_dict().keys()  # the switches add or remove no parameter
    other.load_state_dict(tiny.state_dict(), strict=True)
    x = seeded_input((1, 3, 32, 32))
    with torch.no_grad():
        assert not torch.allclose(other(x), tiny(x), atol=1e-3)
        same_masks = torch.allclose(other.forward_masks(x), tiny.forward_masks(x), rtol=0, atol=0)
    assert same_masks == (not l2_norm)  # upsampling happens after the masks; L2 norm before


def test_strict_state_dict_round_trip_through_an_official_format_file(tmp_path: Path,
                                                                      tiny: torch.nn.Module) -> None:
    """Official checkpoints are ``{'model': state_dict}`` (segm/model/factory.py ``load_model``)."""
    path = tmp_path / "checkpoint.pth"
    state = {k: v + 0.01 * torch.randn_like(v) for k, v in tiny.state_dict().items()}  # differs from the init
    torch.save({"model": state, "epoch": 3}, path)
    loaded = create_model("isegmenter_tiny", checkpoint=path)
    assert loaded.load_report.complete and loaded.load_report.container == "model"
    assert loaded.load_report.loaded == len(state) == 185
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_input_sizes_must_be_multiples_of_the_patch() -> None:
    with pytest.raises(InputSizeError) as err:
        model_info("isegmenter_tiny").check_input_size(500)
    assert "multiples of 16" in str(err.value) and err.value.hint == "use e.g. 496 or 512"
    with pytest.raises(InputSizeError, match="72x64 input: height and width must be multiples of 16"):
        create_model("isegmenter_tiny")(torch.zeros(1, 3, 72, 64))


def test_bad_upsample_mode_is_named() -> None:
    with pytest.raises(ValueError, match="upsample must be one of \\('nearest', 'bilinear'\\), got 'bicubic'"):
        create_model("isegmenter_tiny", upsample="bicubic")


def test_quantizer_sites_see_softmax_and_gelu_producers(tiny: torch.nn.Module) -> None:
    """Matmuls and adds are modules, so the traced site finder sees attention and MLP data flow."""
    sites = {s.path: s for s in find_sites(tiny, seeded_input((1, 3, 32, 32)))}
    assert sites["encoder.blocks.0.attn.matmul_av"].producers[0] == "softmax"
    assert sites["decoder.blocks.1.mlp.fc2"].producers[0] == "gelu"
    for path in ("decoder.matmul_patch", "decoder.matmul_classes", "decoder.matmul_masks", "encoder.patch_embed.proj"):
        assert path in sites
    assert "encoder.head" not in sites  # the ImageNet head is kept for loading only and never runs
    linears = [p for p, s in sites.items() if s.is_layer]
    assert len(linears) == 1 + 14 * 4 + 1  # patch conv, 4 linears per block (12 + 2 blocks), proj_dec


def test_original_segmenter_exports_and_verifies_against_onnxruntime(tmp_path: Path) -> None:
    """L2 norm and bilinear upsampling in the graph (the I-Segmenter default is exported by the zoo-wide test)."""
    model = create_model("isegmenter_tiny", l2_norm=True, upsample="bilinear")
    report = export_onnx(model, tmp_path / "segmenter.onnx", input_size=64, verify_each=False)
    assert report.agreement.rel_max_diff <= 1e-4 and report.agreement.argmax_agreement == 1.0
    graph = onnx.load(str(tmp_path / "segmenter.onnx")).graph
    resize_modes = [a.s.decode() for n in graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"]
    assert resize_modes[-1] == "linear"
    assert sum(n.op_type == "LayerNormalization" for n in graph.node) == 2 * 14 + 1 + 1 + 1
