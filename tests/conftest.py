"""Shared test setup: the ``support`` helpers, the official data folder, and one thread for reproducible numerics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

OFFICIAL_DATA = TESTS / "data" / "official"


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    torch.set_num_threads(1)
