"""``mvd compile --with-app-backend``: the bundle gains app/ (native library, MvdSegmenter jar, integration note)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mobilevit_deploy.cli.main import main


@pytest.mark.slow
def test_compile_with_app_backend_packs_library_jar_and_note(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert main(["compile", "topformer_tiny", "--target", "tvm", "--arch", "host", "--input-size", "64",
                 "--with-app-backend", "-o", str(out)]) == 0
    assert "app        " in capsys.readouterr().out
    app = out / "app"
    libs = sorted(p.name for p in (app / "lib" / "host").iterdir())
    assert any(name.startswith("libmvdseg") and name.endswith(".so") for name in libs), libs
    with zipfile.ZipFile(app / "mvdseg.jar") as jar:
        assert "org/mobilevitdeploy/seg/MvdSegmenter.class" in jar.namelist()
    note = (app / "INTEGRATION.md").read_text()
    assert "System.loadLibrary" in note and "metadata.json" in note
    assert main(["verify", str(out)]) == 0  # the extra folder does not break the bundle's own checks


def test_app_backend_for_an_onnx_bundle_is_refused_before_any_work(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", "topformer_tiny", "--target", "onnx", "--arch", "host", "--with-app-backend",
                 "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "app backend runs ExecuTorch or TVM artifacts" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
