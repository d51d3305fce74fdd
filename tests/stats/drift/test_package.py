"""``keepwell.stats.drift``'s public surface: ``__all__`` in ruff's order, equal to its names."""

from __future__ import annotations

from types import ModuleType

import keepwell.stats
import keepwell.stats.drift as drift


def isort_order(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    assert drift.__all__ == sorted(drift.__all__, key=isort_order)
    public = {name for name, value in vars(drift).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)
              and name != "annotations"}
    assert set(drift.__all__) == public


def test_importing_does_no_io() -> None:
    # the package is pure: importing it reads no file and no setting
    assert keepwell.stats.__all__ == []
