"""Normalised Wasserstein against scipy, and against Evidently's formula.

Evidently's ``wasserstein`` drift test is, in its source
(``evidently/calculations/stattests/wasserstein_distance_norm.py``)::

    norm = max(np.std(reference_data), 0.001)
    wd_norm_value = stats.wasserstein_distance(reference_data, current_data) / norm

which :func:`evidently_wasserstein` below follows. Tolerances: from raw reference values,
equal to that formula to 1e-12 (relative). From a profile (101 quantiles), within 0.02 reference
standard deviations of it on the benchmark's five families and on integer data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from keepwell.stats.drift.columns import numeric_column
from keepwell.stats.drift.wasserstein import Wasserstein, wasserstein_distance

from .samples import profile_of


def evidently_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's normalised Wasserstein distance, as its source computes it."""
    norm = max(np.std(reference), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


FAMILIES: dict[str, Any] = {
    "normal": lambda rng, n: rng.normal(0, 1, n),
    "lognormal": lambda rng, n: rng.lognormal(0, 1, n),
    "exponential": lambda rng, n: rng.exponential(1, n),
    "uniform": lambda rng, n: rng.uniform(0, 1, n),
    "gamma": lambda rng, n: rng.gamma(2, 1, n),
    "integers": lambda rng, n: np.round(rng.normal(40, 12, n)),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_raw_reference_equals_scipy_and_evidently(family: str, shift: float) -> None:
    rng = np.random.default_rng(1)
    a = FAMILIES[family](rng, 3_000)
    b = FAMILIES[family](rng, 2_000) + shift * a.std()
    assert wasserstein_distance(numeric_column(a, b)) == pytest.approx(
        stats.wasserstein_distance(a, b), rel=1e-12)
    result = Wasserstein().compare(a, b)
    assert result.statistic == pytest.approx(evidently_wasserstein(a, b), rel=1e-12)
    # TODO(peer cross-check): compare with evidently's own stattest in the pandas<3
    # environment the lead engineer sets up (evidently 0.7.23).


def test_a_constant_reference_is_normalised_by_evidentlys_floor() -> None:
    a, b = np.full(100, 3.0), np.full(50, 3.002)
    assert Wasserstein().compare(a, b).statistic == pytest.approx(evidently_wasserstein(a, b))
    assert Wasserstein().compare(a, b).statistic == pytest.approx(2.0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n", [2_000, 100_000])
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_from_a_profile_within_two_hundredths_of_a_std(family: str, n: int,
                                                       shift: float) -> None:
    rng = np.random.default_rng(n)
    a = FAMILIES[family](rng, n)
    b = FAMILIES[family](rng, n) + shift * a.std()
    ours = Wasserstein().compare(profile_of(a), b).statistic
    assert ours == pytest.approx(evidently_wasserstein(a, b), abs=0.02)


def test_a_whole_shift_by_k_standard_deviations_is_k() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(10, 3, 50_000)
    for k in (0.25, 1.0, 3.0):
        assert Wasserstein().compare(a, a + k * a.std()).statistic == pytest.approx(k, rel=1e-3)


def test_the_significance_gate_is_the_ks_test_on_the_same_values() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=400), rng.normal(0.3, 1, 300)
    assert Wasserstein().compare(a, b).p_value == pytest.approx(stats.ks_2samp(a, b).pvalue)
