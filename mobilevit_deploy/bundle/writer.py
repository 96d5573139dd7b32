"""Write a bundle folder atomically: built in a temporary sibling folder, renamed into place when complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mobilevit_deploy.atomic import atomic_path

from .checksums import describe_files
from .metadata import (
    FORMAT,
    FORMAT_VERSION,
    METADATA,
    REFERENCE_INPUT,
    REFERENCE_OUTPUT,
    REPORT,
    now_utc,
    tool_versions,
)


def write_bundle(out_dir: Path, metadata: dict[str, Any], files: dict[str, Path], reference_input: np.ndarray,
                 reference_output: np.ndarray, report: dict[str, Any]) -> Path:
    """Copy ``files`` (bundle-relative name → source path) in, add the reference pair, checksums and metadata.

    ``metadata`` supplies the model/target/input/output/classes sections; this function adds ``format``,
    ``files``, ``reference``, ``versions`` and ``created``. Nothing is left at ``out_dir`` if anything fails.
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        for rel, source in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
        (tmp / REFERENCE_INPUT).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp / REFERENCE_INPUT, reference_input.astype(np.float32))
        np.save(tmp / REFERENCE_OUTPUT, reference_output.astype(np.float32))
        listed = [*files, REFERENCE_INPUT, REFERENCE_OUTPUT]
        full = {
            "format": FORMAT, "format_version": FORMAT_VERSION, **metadata,
            "reference": {"input": REFERENCE_INPUT, "output": REFERENCE_OUTPUT,
                          "produced_by": f"onnxruntime {tool_versions()['onnxruntime']}"},
            "files": describe_files(tmp, listed), "versions": tool_versions(), "created": now_utc(),
        }
        (tmp / METADATA).write_text(json.dumps(full, indent=2) + "\n")
        (tmp / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return out_dir
