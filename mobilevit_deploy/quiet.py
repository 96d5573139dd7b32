"""Silence library chatter (progress lines, deprecation warnings, notices about packages we do not use) around
a call, so the user sees our progress and real errors only. Errors still propagate; levels are restored."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*logger_names: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise the named loggers to ``level``, ignore warnings and swallow stdout for the duration."""
    loggers = [logging.getLogger(name) for name in logger_names]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, old in zip(loggers, previous, strict=True):
            lg.setLevel(old)
