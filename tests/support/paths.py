"""Paths of the data the tests ship (imported by name, unlike conftest.py, which pytest may load twice)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
OFFICIAL_DATA = TESTS / "data" / "official"
