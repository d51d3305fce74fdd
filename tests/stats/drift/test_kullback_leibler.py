"""Kullback–Leibler against ``scipy.stats.entropy`` in Evidently's direction.

Evidently's ``kl_div`` is ``stats.entropy(reference_percents, current_percents)`` =
KL(reference ‖ current). Tolerance: 1e-12 relative on the same floored shares.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from keepwell.stats.drift.kullback_leibler import KullbackLeibler, kullback_leibler


@pytest.mark.parametrize("seed", range(10))
def test_equals_scipy_entropy_of_reference_given_current(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.full(6, 5.0)), rng.dirichlet(np.full(6, 5.0))  # shares > 1e-4
    assert kullback_leibler(p, q) == pytest.approx(stats.entropy(p, q), rel=1e-12)


def test_direction_and_smoothing() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert kullback_leibler(p, q) != pytest.approx(kullback_leibler(q, p))
    empty = np.array([1.0, 0.0])
    expected = 0.5 * np.log(0.5 / 1.0) + 0.5 * np.log(0.5 / 1e-4)  # the empty cell floored
    assert kullback_leibler(p, empty) == pytest.approx(expected, rel=1e-12)


def test_categorical_column() -> None:
    reference = ["a"] * 600 + ["b"] * 400
    result = KullbackLeibler().compare(reference, ["a"] * 300 + ["b"] * 700)
    assert result.statistic == pytest.approx(stats.entropy([0.6, 0.4], [0.3, 0.7]))
