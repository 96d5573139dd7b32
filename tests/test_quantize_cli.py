"""``mvd quantize`` end to end at 64 px with two calibration images, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobilevit_deploy.cli.main import main


def test_quantize_writes_table_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "q"
    rc = main(["quantize", "topformer_tiny", "--method", "uniform", "--bits", "w8a8", "--num-calib", "2",
               "--num-eval", "2", "--input-size", "64", "-o", str(out)])
    assert rc == 0
    table = json.loads((out / "q.json").read_text())
    assert table["format"] == "mobilevit-deploy.quant-table" and len(table["points"]) > 100
    report = json.loads((out / "fidelity.json").read_text())
    assert report["end_to_end_sqnr_db"] > 20 and report["quant_mIoU"] is not None
    assert (out / "fidelity.png").read_bytes()[:4] == b"\x89PNG"
    assert "[calibration] 1/1" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--bits", "w5a4"], "not supported"),
    (["--bits", "int8"], "not of the form"),
    (["--calib", "/nonexistent/folder"], "not found"),
    (["--num-calib", "0"], "at least 1"),
])
def test_quantize_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    rc = main(["quantize", "topformer_tiny", "--input-size", "64", "-o", str(tmp_path / "o"), *args])
    assert rc == 2
    assert message in capsys.readouterr().err
