"""PSI against Evidently's formula, on the same cells.

Evidently's ``psi`` (``evidently/calculations/stattests/psi.py`` and ``utils.get_binned_data``)
computes ``Σ (ref - cur) · ln(ref / cur)`` after replacing empty cells by 1e-4 (or, when some
non-zero share is at most 1e-4, by that share / 10⁶). :func:`evidently_psi` below follows it.
Tolerance: equal to 1e-12 whenever no non-zero share is below 1e-4 (empty cells included).
Evidently bins numeric columns by Sturges' rule over both samples, keepwell by the reference
profile's deciles, so the cross-check is on identical cells.
"""

from __future__ import annotations

import numpy as np
import pytest

from keepwell.stats.drift.population_stability import (
    PopulationStabilityIndex,
    population_stability_index,
)

from .samples import profile_of


def evidently_fill_zeroes(shares: np.ndarray) -> np.ndarray:
    shares = shares.astype(float).copy()
    smallest = shares[shares != 0].min()
    np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return shares


def evidently_psi(reference: np.ndarray, current: np.ndarray) -> float:
    ref, cur = evidently_fill_zeroes(reference), evidently_fill_zeroes(current)
    return float(sum((r - c) * np.log(r / c) for r, c in zip(ref, cur, strict=True)))


@pytest.mark.parametrize("seed", range(10))
def test_equals_evidentlys_formula_on_the_same_cells(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(12, 5.0))  # no share below 1e-4 ...
    q = rng.dirichlet(np.full(12, 5.0))
    q[rng.integers(12)] = 0.0  # ... but an empty current cell
    q = q / q.sum()
    assert population_stability_index(p, q) == pytest.approx(evidently_psi(p, q), rel=1e-12)
    # TODO(peer cross-check): evidently.calculations.stattests.psi on the same data in the
    # pandas<3 environment, with categorical columns (identical cells in both tools).


def test_categorical_psi_equals_evidentlys_on_category_shares() -> None:
    reference = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    current = np.array(["a"] * 300 + ["b"] * 300 + ["c"] * 350 + ["d"] * 50)
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([300, 300, 350, 50]) / 1_000
    result = PopulationStabilityIndex().compare(reference, current)
    assert result.statistic == pytest.approx(evidently_psi(p, q), rel=1e-12)


def test_textbook_value_and_smoothing() -> None:
    p, q = np.array([0.25, 0.25, 0.25, 0.25]), np.array([0.1, 0.2, 0.3, 0.4])
    manual = sum((b - a) * np.log(b / a) for a, b in zip(p, q, strict=True))
    assert population_stability_index(p, q) == pytest.approx(manual)
    empty = np.array([0.5, 0.5, 0.0, 0.0])
    value = population_stability_index(p, empty, epsilon=1e-4)
    assert np.isfinite(value) and value > 4  # two empty deciles: a massive shift


def test_numeric_psi_is_over_the_profile_deciles() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=10_000), rng.normal(0.5, 1, 10_000)
    profile = profile_of(a)
    edges = np.array(profile.bin_edges)
    open_edges = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
    p = np.histogram(a, bins=edges)[0] / a.size
    q = np.histogram(b, bins=open_edges)[0] / b.size
    result = PopulationStabilityIndex().compare(profile, b)
    assert result.statistic == pytest.approx(evidently_psi(p, q), rel=1e-12)
    assert result.statistic == pytest.approx(0.2377, abs=0.02)  # the normal-shift value
