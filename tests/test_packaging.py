"""The package installs under one name: models/, quant/, targets/ become mobilevit_deploy.* subpackages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_subpackages_resolve_to_the_top_level_folders() -> None:
    import mobilevit_deploy.models
    import mobilevit_deploy.quant
    import mobilevit_deploy.targets

    for module, folder in [(mobilevit_deploy.models, "models"), (mobilevit_deploy.quant, "quant"),
                           (mobilevit_deploy.targets, "targets")]:
        assert Path(module.__file__).parent == ROOT / folder


@pytest.mark.slow
def test_wheel_contains_no_generic_top_level_package(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mobilevit_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mobilevit_deploy"}
    assert "mobilevit_deploy/models/topformer.py" in names and "mobilevit_deploy/quant/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mvd = mobilevit_deploy.cli.main:main" in text and "mobilevit-deploy = " in text


def test_every_source_package_is_declared() -> None:
    """A folder with an __init__.py that pyproject does not list would silently miss from the wheel."""
    import tomllib

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    mapping = {"models": "mobilevit_deploy.models", "quant": "mobilevit_deploy.quant",
               "targets": "mobilevit_deploy.targets", "mobilevit_deploy": "mobilevit_deploy"}
    found = set()
    for top, package in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((package, *rel)))
    assert found == declared
