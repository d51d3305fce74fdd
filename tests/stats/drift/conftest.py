"""Fixtures shared by the drift tests: same-distribution trials, profiles built once."""

from __future__ import annotations

import pytest

from .samples import Trial, make_trials


@pytest.fixture(scope="session")
def null_trials() -> dict[str, list[Trial]]:
    """400 same-distribution trials per column kind, 300 values on each side."""
    return {kind: make_trials(kind, 400, 300, seed)
            for seed, kind in enumerate(["numeric", "categorical", "binary"])}
