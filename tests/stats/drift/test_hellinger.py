"""Hellinger distance against its two textbook forms (Evidently computes the first).

Tolerance: 1e-12 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from keepwell.stats.drift.hellinger import Hellinger, hellinger_distance


@pytest.mark.parametrize("seed", range(10))
def test_equals_both_textbook_forms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    affinity_form = np.sqrt(1 - np.sum(np.sqrt(p * q)))
    euclidean_form = np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / np.sqrt(2)
    assert hellinger_distance(p, q) == pytest.approx(affinity_form, rel=1e-12)
    assert hellinger_distance(p, q) == pytest.approx(euclidean_form, rel=1e-9)


def test_bounds_and_a_column() -> None:
    assert hellinger_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    result = Hellinger().compare(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10)
    assert result.statistic == pytest.approx(np.sqrt(1 - np.sqrt(0.45) - np.sqrt(0.05)))
