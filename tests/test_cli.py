"""The ``mvd`` front door: listing, export, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mobilevit_deploy.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_lists_the_zoo_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == 13
    assert rows["topformer_tiny"]["params"] == 1389654 and rows["topformer_tiny"]["input_size"] == 512
    assert rows["casvit_xs"]["task"] == "classification" and rows["casvit_xs"]["input_size"] == 224
    assert rows["topformer_tiny"]["gmacs"] == pytest.approx(0.534, abs=1e-3)


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "topformer*")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:5] == ["model", "task", "input", "params", "GMACs"]
    assert [line.split()[0] for line in lines[2:]] == ["topformer_tiny", "topformer_small", "topformer_base"]
    assert "1.390M" in lines[2] and "mmseg" in lines[2]


def test_export_writes_a_verified_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "t.onnx"
    code, out, _ = _run(capsys, "export", "topformer_tiny", "--input-size", "128", "-o", str(out_file))
    assert code == 0 and out_file.stat().st_size > 1_000_000
    assert "argmax agreement 100.00%" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.onnx", "t.report.json"]
    assert "fold_batchnorm" in out and "ops: " in out


def test_export_with_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mobilevit_deploy.models import create_model

    ckpt = tmp_path / "c.pth"
    torch.save({"state_dict": create_model("topformer_tiny").state_dict()}, ckpt)
    code, out, _ = _run(capsys, "export", "topformer_tiny", "--checkpoint", str(ckpt), "--input-size", "64",
                        "-o", str(tmp_path / "m.onnx"))
    assert code == 0 and "loaded 376 tensors from 'state_dict'" in out


@pytest.mark.parametrize(("argv", "expected"), [
    (["export", "topformer_tnyi", "-o", "X"], "unknown model 'topformer_tnyi'"),
    (["export", "topformer_tiny", "--input-size", "500", "-o", "X"], "cannot take input size 500x500"),
    (["export", "topformer_tiny", "--checkpoint", "missing.pth", "-o", "X"], "checkpoint not found"),
    (["export", "topformer_tiny", "--opset", "7", "--input-size", "64", "-o", "X"], "unsupported opset 7"),
])
def test_bad_input_is_one_clear_line_and_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], expected: str) -> None:
    argv = [str(tmp_path / "m.onnx") if a == "X" else a for a in argv]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    first, *rest = err.strip().splitlines()
    assert expected in first and "Traceback" not in err and len(rest) <= 1
    assert list(tmp_path.iterdir()) == []


def test_console_script_is_installed() -> None:
    mvd = Path(sys.executable).with_name("mvd")
    result = subprocess.run([str(mvd), "models", "casvit_xs"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "casvit_xs" in result.stdout


def test_export_uses_the_shipped_demo_checkpoint_and_says_so(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "export", "topformer_tiny", "--input-size", "64", "--cheap-verify",
                        "-o", str(tmp_path / "m.onnx"))
    assert code == 0 and "using the shipped demo checkpoint topformer_tiny_shapes.pth" in out
    code, out, _ = _run(capsys, "export", "topformer_tiny", "--input-size", "64", "--cheap-verify",
                        "--random-weights", "-o", str(tmp_path / "r.onnx"))
    assert code == 0 and "has random weights" in out and "shipped demo" not in out
