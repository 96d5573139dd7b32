"""Checkpoint loading: the official container formats, strictness, and every kind of bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilevit_deploy.errors import CheckpointError
from mobilevit_deploy.models import create_model
from support.paths import OFFICIAL_DATA
from support.synthetic_checkpoints import read_key_shapes, synthetic_state_dict


def _state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    return synthetic_state_dict(read_key_shapes(OFFICIAL_DATA / f"{name}.keys.tsv"), seed=seed)


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    ours = model.state_dict()
    for key, value in state.items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize("container", ["state_dict", "model", "state_dict_ema", "raw"])
def test_official_containers_load_strictly(tmp_path: Path, container: str) -> None:
    state = _state("topformer_tiny")
    obj = state if container == "raw" else {container: state, "meta": {"CLASSES": ("wall", "building")}}
    model = create_model("topformer_tiny", checkpoint=_save(obj, tmp_path / "ckpt.pth"))
    _assert_loaded(model, state)
    assert model.load_report.container == container and model.load_report.complete


def test_mmseg_checkpoint_with_numpy_metadata_and_optimizer_loads(tmp_path: Path) -> None:
    state = _state("casvit_xs_seg")
    obj = {"meta": {"PALETTE": np.arange(6).reshape(2, 3), "iter": np.int64(40000), "mmseg_version": "0.24.0"},
           "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}}
    model = create_model("casvit_xs_seg", checkpoint=_save(obj, tmp_path / "fpn_casvit_xs.pth"))
    _assert_loaded(model, state)


def test_classification_checkpoint_with_model_key_loads(tmp_path: Path) -> None:
    state = _state("casvit_xs")
    model = create_model("casvit_xs", checkpoint=_save({"model": state, "epoch": 299}, tmp_path / "c.pth"))
    _assert_loaded(model, state)


def test_data_parallel_prefix_is_stripped(tmp_path: Path) -> None:
    state = _state("casvit_xs")
    ckpt = _save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dp.pth")
    _assert_loaded(create_model("casvit_xs", checkpoint=ckpt), state)


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.pth"):
        create_model("topformer_tiny", checkpoint=tmp_path / "nope.pth")


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint" * 20, b'{"state_dict": {}}'])
def test_a_file_that_is_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        create_model("topformer_tiny", checkpoint=path)


def test_a_checkpoint_without_tensors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="contains no tensors"):
        create_model("topformer_tiny", checkpoint=_save({"epoch": 3, "lr": 0.1}, tmp_path / "x.pth"))


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _save({"state_dict": _state("topformer_tiny"), "hook": _RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"refused to load .*pickled code \(posix.system\)"):
        create_model("topformer_tiny", checkpoint=path)
    assert not marker.exists()


def test_another_variant_names_the_mismatched_keys_and_the_variant(tmp_path: Path) -> None:
    path = _save({"state_dict": _state("topformer_small")}, tmp_path / "small.pth")
    with pytest.raises(CheckpointError) as err:
        create_model("topformer_tiny", checkpoint=path)
    message = str(err.value)
    assert "does not fit topformer_tiny" in message
    assert "backbone.tpm.layer2.conv.4.c.weight: checkpoint 24x64x1x1 vs model 16x64x1x1" in message
    assert "unexpected (backbone.tpm.layer10" in message
    assert err.value.hint == "it looks like a topformer_small checkpoint"


def test_non_strict_loads_an_imagenet_backbone_into_a_segmenter(tmp_path: Path) -> None:
    """CAS-ViT ImageNet weights (no ``backbone.`` prefix, with classifier heads) into the segmenter."""
    cls_state = _state("casvit_xs", seed=3)
    path = _save({"model": cls_state}, tmp_path / "cas-vit-xs.pth")
    with pytest.raises(CheckpointError, match="does not fit casvit_xs_seg"):
        create_model("casvit_xs_seg", checkpoint=path)
    model = create_model("casvit_xs_seg", checkpoint=path, strict=False)
    report = model.load_report
    assert report.prefix_added == "backbone."
    assert set(report.unexpected) >= {"backbone.head.weight", "backbone.dist_head.weight", "backbone.norm.weight"}
    assert any(k.startswith("neck.") for k in report.missing) and any(k.startswith("backbone.norm0") for k in
                                                                         report.missing)
    loaded = model.state_dict()
    assert torch.equal(loaded["backbone.network.0.0.attn.qkv.weight"], cls_state["network.0.0.attn.qkv.weight"])
    assert "skipped" not in report.summary() and "missing" in report.summary()


def test_a_checkpoint_of_another_family_matches_nothing(tmp_path: Path) -> None:
    path = _save({"state_dict": _state("topformer_tiny")}, tmp_path / "topformer.pth")
    with pytest.raises(CheckpointError, match=r"no tensor in .* matches casvit_xs"):
        create_model("casvit_xs", checkpoint=path, strict=False)
