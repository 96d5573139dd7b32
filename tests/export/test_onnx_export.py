"""ONNX export of the whole zoo, verified by ONNX Runtime against PyTorch, and its failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from mobilevit_deploy.errors import ExportError, InputSizeError
from mobilevit_deploy.export import export_onnx, report_path
from mobilevit_deploy.export import passes as passes_pkg
from mobilevit_deploy.models import create_model, list_models


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_exports_and_verifies(tmp_path: Path, name: str) -> None:
    out = tmp_path / f"{name}.onnx"
    report = export_onnx(create_model(name), out, input_size=64, verify_each=False)
    assert report.agreement.rel_max_diff <= 1e-4
    assert report.agreement.argmax_agreement == 1.0
    assert "BatchNormalization" not in _ops(out)
    assert not any(p.suffix == ".data" for p in tmp_path.iterdir()), "weights must stay inside the .onnx"


def test_verification_after_every_pass_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "casvit.onnx"
    report = export_onnx(create_model("casvit_xs_seg"), out, input_size=64)
    names = [s.name for s in report.stages]
    assert names == ["export", "remove_identity", "fold_constants", "fold_batchnorm", "static_pooling", "infer_shapes"]
    assert all(s.agreement is not None and s.agreement.rel_max_diff <= 1e-4 for s in report.stages)
    saved = json.loads(report_path(out).read_text())
    assert saved["opset"] == 18 and saved["input_size"] == 64 and saved["size_bytes"] == out.stat().st_size
    assert saved["op_histogram"]["Conv"] == 161 and "BatchNormalization" not in saved["op_histogram"]
    assert saved["params"] == pytest.approx(6.86e6, rel=0.01)
    assert all(stage["seconds"] >= 0 for stage in saved["stages"])


def test_batchnorm_folding_is_what_removes_casvit_prenorms(tmp_path: Path) -> None:
    """CAS-ViT keeps 24 pre-norm BNs (Add → BN → Conv) after export; the pass folds them into the next conv."""
    model = create_model("casvit_xs_seg")
    export_onnx(model, tmp_path / "kept.onnx", 64, skip_passes={"fold_batchnorm"}, verify_each=False)
    export_onnx(model, tmp_path / "folded.onnx", 64, verify_each=False)
    assert _ops(tmp_path / "kept.onnx").count("BatchNormalization") == 24
    assert _ops(tmp_path / "folded.onnx").count("BatchNormalization") == 0


def test_topformer_tiny_has_no_batchnorm_at_its_default_size(tmp_path: Path) -> None:
    out = tmp_path / "t.onnx"
    report = export_onnx(create_model("topformer_tiny"), out, 512, verify_each=False)
    assert "BatchNormalization" not in _ops(out) and report.agreement.argmax_agreement == 1.0


def test_fp16_export_halves_the_file_and_verifies(tmp_path: Path) -> None:
    model = create_model("topformer_tiny")
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", 128, verify_each=False)
    fp16 = export_onnx(model, tmp_path / "fp16.onnx", 128, fp16=True)
    assert fp16.stages[-1].name == "to_fp16"
    assert fp16.size_bytes < 0.55 * fp32.size_bytes
    assert fp16.agreement.rel_max_diff <= 2e-2 and fp16.agreement.argmax_agreement >= 0.995
    graph = onnx.load(str(tmp_path / "fp16.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_a_diverging_pass_is_named_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def corrupt(model: onnx.ModelProto) -> onnx.ModelProto:
        init = model.graph.initializer[0]
        array = onnx.numpy_helper.to_array(init) * 3
        init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
        return model

    patched = tuple(passes_pkg.OnnxPass(p.name, corrupt if p.name == "static_pooling" else p.run, p.doc, p.optional)
                    for p in passes_pkg.PASSES)
    monkeypatch.setattr(passes_pkg, "PASSES", patched)
    with pytest.raises(ExportError, match="diverged from PyTorch after pass 'static_pooling'"):
        export_onnx(create_model("topformer_tiny"), tmp_path / "m.onnx", 64)
    assert list(tmp_path.iterdir()) == []


def test_unknown_pass_name_lists_the_passes(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown pass fold_bn") as err:
        export_onnx(create_model("topformer_tiny"), tmp_path / "m.onnx", 64, skip_passes={"fold_bn"})
    assert "fold_batchnorm" in err.value.hint


@pytest.mark.parametrize("opset", [7, 13, 24])
def test_unsupported_opsets_are_refused(tmp_path: Path, opset: int) -> None:
    with pytest.raises(ExportError, match=f"unsupported opset {opset}") as err:
        export_onnx(create_model("topformer_tiny"), tmp_path / "m.onnx", 64, opset=opset)
    assert "16..23" in err.value.hint and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [16, 17, 23])
def test_other_supported_opsets_export(tmp_path: Path, opset: int) -> None:
    out = tmp_path / "m.onnx"
    export_onnx(create_model("topformer_tiny"), out, 64, opset=opset, verify_each=False)
    assert onnx.load(str(out)).opset_import[0].version == opset


class _Histogram(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.histc(self.conv(x), bins=4)


class _Wrapper(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stats = _Histogram()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stats(x)


def test_an_op_the_exporter_cannot_translate_is_named_with_its_module(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as err:
        export_onnx(_Wrapper(), tmp_path / "m.onnx", 16)
    assert "op aten.histc.default in module 'stats'" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_an_input_size_the_model_cannot_take(tmp_path: Path) -> None:
    with pytest.raises(InputSizeError, match="multiples of 64"):
        export_onnx(create_model("topformer_tiny"), tmp_path / "m.onnx", 100)
    assert list(tmp_path.iterdir()) == []
