"""The data layer's user-facing error."""

from __future__ import annotations

from mobilevit_deploy.errors import DeployError


class DataError(DeployError):
    """A dataset folder or file is missing, empty, unreadable, or inconsistent; the message names the file."""
