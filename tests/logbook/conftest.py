"""Fixtures shared by the logbook's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keepwell.logbook import Logbook


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Logbook]:
    """A logbook in a fresh folder, closed afterwards."""
    book = Logbook(tmp_path / "log")
    try:
        yield book
    finally:
        book.close()
