"""Chi-square against ``scipy.stats.chi2_contingency(correction=False)``.

Tolerance: statistic and p-value to 1e-10 relative, on tables without empty columns (scipy
refuses those; keepwell drops them, which is what a table of the remaining cells gives).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from keepwell.stats.drift.chi_square import ChiSquare, chi_square_homogeneity, cohen_w

from .samples import profile_of


@pytest.mark.parametrize("seed", range(10))
def test_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 200, size=(2, 2 + seed))
    table[:, table.sum(axis=0) == 0] = 1
    stat, dof, p = chi_square_homogeneity(table[0], table[1])
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)
    assert dof == expected.dof


def test_empty_cells_are_dropped() -> None:
    with_empty = chi_square_homogeneity([10, 0, 20, 5], [12, 0, 18, 9])
    without = chi_square_homogeneity([10, 20, 5], [12, 18, 9])
    assert with_empty == pytest.approx(without)
    assert chi_square_homogeneity([10], [12]) == (0.0, 0, 1.0)


def test_a_column_against_its_profile_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    levels = np.array(list("abcdefgh"))
    a = rng.choice(levels, 5_000)
    b = rng.choice(np.append(levels, "unseen"), 2_000)
    result = ChiSquare().compare(profile_of(a), b)
    cells = [*levels, "unseen"]
    table = np.array([[np.sum(a == c) for c in cells], [np.sum(b == c) for c in cells]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.effect == pytest.approx(cohen_w(expected.statistic, 5_000, 2_000))


def test_pooled_rare_categories_share_the_other_cell_with_unseen_ones() -> None:
    a = np.array(["a"] * 60 + ["b"] * 30 + ["rare1"] * 6 + ["rare2"] * 4)
    b = np.array(["a"] * 50 + ["b"] * 30 + ["rare1"] * 10 + ["brand-new"] * 10)
    profile = profile_of(a, max_categories=2)
    assert profile.other_count == 10
    result = ChiSquare().compare(profile, b)
    table = np.array([[60, 30, 10], [50, 30, 20]])
    assert result.statistic == pytest.approx(stats.chi2_contingency(
        table, correction=False).statistic)


def test_cohen_w_is_independent_of_the_size_ratio() -> None:
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.3, 0.3])
    ws = []
    for n_ref, n_cur in [(1_000, 1_000), (10_000, 500), (500, 10_000)]:
        stat, _, _ = chi_square_homogeneity(p * n_ref, q * n_cur)
        ws.append(cohen_w(stat, n_ref, n_cur))
    m = (p + q) / 2
    assert ws[0] == pytest.approx(np.sqrt(np.sum((p - q) ** 2 / m)))
    assert max(ws) - min(ws) < 0.03
