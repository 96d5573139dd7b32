"""User-facing errors: what went wrong and what to do, printed by the CLI in one or two lines without a traceback.

Anything that is not a ``DeployError`` is an internal bug and keeps its traceback.
"""

from __future__ import annotations


class DeployError(Exception):
    """A problem with the user's input (model name, checkpoint, image folder, device, ...), with a fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UnknownModelError(DeployError, KeyError):
    """The model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return DeployError.__str__(self)


class CheckpointError(DeployError):
    """A checkpoint file is missing, unreadable, unsafe, or does not fit the model."""


class InputSizeError(DeployError, ValueError):
    """The model cannot take this input size."""


class ExportError(DeployError):
    """Export to ONNX failed or did not verify."""
