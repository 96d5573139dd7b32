"""The latency harness: deploy bundles to a device, run their runners, check outputs, summarize timings."""

from .profile import profile
from .report import ConfigResult, ProfileReport
from .stats import Stats, summarize

__all__ = ["ConfigResult", "ProfileReport", "Stats", "profile", "summarize"]
