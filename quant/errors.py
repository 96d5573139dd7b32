"""User-facing quantization errors (the package's ``DeployError`` family): a bad config or a broken table file."""

from __future__ import annotations

from mobilevit_deploy.errors import DeployError


class QuantConfigError(DeployError, ValueError):
    """A quantization config asks for something we do not support (bits, granularity, unknown scheme)."""


class QuantTableError(DeployError):
    """A quantization table file is missing, not JSON, or does not describe valid quantization points."""
