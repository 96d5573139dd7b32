"""Atomic outputs: write under a temporary name next to the target, rename on success, delete on failure.

An interrupted or failed command therefore never leaves a half-written model, report or bundle behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create private (0600/0700) paths; give the result the modes a normal write would have."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask if path.is_dir() else 0o666 & ~umask)


@contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path (file, or folder with ``directory=True``) that becomes ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _umask_permissions(tmp)
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
