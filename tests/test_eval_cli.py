"""``mvd eval``: the shipped demo checkpoints give their recorded mIoU, bad data fails in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mobilevit_deploy.checkpoints import default_checkpoint, demo_meta
from mobilevit_deploy.cli.main import main
from mobilevit_deploy.data.images import write_png
from mobilevit_deploy.models import create_model

# mIoU of the shipped checkpoints on the first 8 images of the generated val split (seed 0), measured once with
# `mvd eval MODEL --data shapes --limit 8`; the full held-out score is in the checkpoint's JSON and README.
STORED_MIOU_8 = {"topformer_tiny": 0.813626, "casvit_xs_seg": 0.368043}
TOLERANCE = 0.005


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(STORED_MIOU_8))
def test_shipped_checkpoint_loads_strictly(name: str) -> None:
    path = default_checkpoint(name)
    assert path is not None and path.stat().st_size < 16e6
    model = create_model(name, checkpoint=path)
    assert model.load_report.complete and model.load_report.container == "state_dict"
    assert 0.35 <= demo_meta(name)["val_mIoU"] <= 0.9  # objects learned (stuff alone gives ~0.15), far from 1


@pytest.mark.parametrize("name", sorted(STORED_MIOU_8))
def test_eval_gives_the_stored_miou(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    code, stdout, stderr = _run(capsys, "eval", name, "--data", "shapes", "--limit", "8", "-o", str(out))
    assert code == 0, stderr
    assert "using the shipped demo checkpoint" in stderr and "8/8 images" in stdout
    result = json.loads(out.read_text())
    assert result["images"] == 8 and result["preprocess"]["input_size"] == [256, 256]
    assert result["mIoU"] == pytest.approx(STORED_MIOU_8[name], abs=TOLERANCE)


def test_agreement_with_itself_on_an_unlabelled_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(2):
        write_png(tmp_path / f"{i}.png", np.random.default_rng(i).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    out = tmp_path / "r.json"
    code, _, stderr = _run(capsys, "eval", "topformer_tiny", "--data", str(tmp_path), "--reference", "topformer_tiny",
                           "-o", str(out))
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["agreement_mIoU"] == 1.0 and "mIoU" not in result


def test_unlabelled_folder_without_reference_is_a_one_line_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    code, _, err = _run(capsys, "eval", "topformer_tiny", "--data", str(tmp_path))
    assert code == 2 and "nothing to score against" in err and "Traceback" not in err


def test_empty_folder_is_a_one_line_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "eval", "topformer_tiny", "--data", str(tmp_path))
    assert code == 2 and f"no images in {tmp_path}" in err and len(err.strip().splitlines()) <= 3


def _tiny_onnx(path: Path, num_classes: int = 24) -> None:
    """A 1×3×64×64 → 1×C×8×8 logits model (8×8 average pool, then a fixed 1×1 conv): the ONNX path in miniature."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).normal(size=(num_classes, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
         helper.make_node("Conv", ["pooled", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def test_onnx_file_runs_through_onnxruntime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, out = tmp_path / "tiny.onnx", tmp_path / "r.json"
    _tiny_onnx(model)
    code, _, stderr = _run(capsys, "eval", str(model), "--data", "shapes", "--limit", "2", "--reference", str(model),
                           "-o", str(out))
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["runtime"] == "onnxruntime" and result["preprocess"]["input_size"] == [64, 64]
    assert 0 <= result["mIoU"] < 0.5 and result["agreement_mIoU"] == 1.0
