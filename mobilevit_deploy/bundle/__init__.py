"""Bundles: one folder per compiled model that an app (or ``mvd verify`` / ``mvd profile``) can use on its own.

Layout::

    metadata.json        everything an app needs without this tool (see ``metadata.py``)
    report.json          how it was built: stage times, sizes, delegation, op scan
    model.pte|.so|.onnx  the artifact
    runner/              the C++ runner and the runtime libraries it needs (ExecuTorch and TVM bundles)
    reference/           a fixed input and ONNX Runtime's output for it (``mvd verify`` compares against it)
"""

from .reader import Bundle, load_bundle
from .writer import write_bundle

__all__ = ["Bundle", "load_bundle", "write_bundle"]
