"""The registry: names, parameter counts of the published variants, input-size rules, unknown names."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.errors import InputSizeError, UnknownModelError
from mobilevit_deploy.models import Task, count_macs, count_params, create_model, list_models, model_info

# Published parameter counts (TopFormer README / our official-code run; CAS-ViT MODEL_ZOO), in thousands.
EXPECTED_KPARAMS = {
    "topformer_tiny": 1390, "topformer_small": 3035, "topformer_base": 5063,
    "casvit_xs": 3201, "casvit_s": 5764, "casvit_m": 12422, "casvit_t": 21763,
}


def test_zoo_lists_every_family() -> None:
    names = list_models()
    assert names[:3] == ["topformer_tiny", "topformer_small", "topformer_base"]
    assert set(list_models("casvit_*_seg")) == {"casvit_xs_seg", "casvit_s_seg", "casvit_m_seg", "casvit_t_seg"}
    assert set(list_models(task=Task.CLASSIFICATION)) == {"casvit_xs", "casvit_s", "casvit_m", "casvit_t"}


@pytest.mark.parametrize("name", sorted(EXPECTED_KPARAMS))
def test_parameter_counts_match_the_papers(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert abs(count_params(model) / 1000 - EXPECTED_KPARAMS[name]) <= 1.0


def test_topformer_tiny_macs_at_512() -> None:
    with torch.device("meta"):
        model = create_model("topformer_tiny")
    assert count_macs(model, 512) == pytest.approx(0.534e9, rel=2e-3)


def test_unknown_model_suggests_the_closest_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        create_model("topformer_tnyi")
    assert "unknown model 'topformer_tnyi'" in str(err.value)
    assert "topformer_tiny" in err.value.hint


def test_unknown_model_without_close_names_points_to_the_listing() -> None:
    with pytest.raises(UnknownModelError) as err:
        model_info("resnet50")
    assert "mvd models" in err.value.hint


def test_num_classes_and_overrides_reach_the_model() -> None:
    model = create_model("topformer_tiny", num_classes=19, dropout_ratio=None)
    assert model.decode_head.conv_seg.out_channels == 19
    assert not model.training


@pytest.mark.parametrize(("size", "hint"), [(500, "448 or 512"), (32, "64")])
def test_topformer_rejects_sizes_that_are_not_multiples_of_64(size: int, hint: str) -> None:
    with pytest.raises(InputSizeError) as err:
        model_info("topformer_tiny").check_input_size(size)
    assert "multiples of 64" in str(err.value) and hint in err.value.hint


def test_topformer_forward_rejects_an_uneven_size_with_a_clear_error() -> None:
    model = create_model("topformer_tiny")
    with pytest.raises(InputSizeError, match="multiple of 64"):
        model(torch.zeros(1, 3, 96, 96))


@pytest.mark.parametrize("name", ["topformer_tiny", "casvit_xs_seg"])
def test_forward_features_returns_four_pyramid_levels(name: str) -> None:
    model = create_model(name)
    with torch.no_grad():
        feats = model.forward_features(torch.zeros(1, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]


def test_output_stride_matches_the_registry() -> None:
    for name in list_models(task=Task.SEGMENTATION):
        info = model_info(name)
        with torch.device("meta"):
            out = create_model(name)(torch.empty(1, 3, 128, 128))
        assert out.shape == (1, info.num_classes, 128 // info.output_stride, 128 // info.output_stride), name


def test_random_weights_are_reproducible_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = create_model("topformer_tiny"), create_model("topformer_tiny")
    assert torch.equal(torch.rand(1), before)
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
