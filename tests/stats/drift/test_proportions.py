"""The two-proportion z-test: z² is the 2 × 2 chi-square (``chi2_contingency``, no correction).

Tolerance: 1e-10 relative for z² and the p-value.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from keepwell.errors import ValidationError
from keepwell.stats.drift.columns import numeric_column
from keepwell.stats.drift.proportions import TwoProportionZTest, cohen_h, two_proportion_z

from .samples import profile_of


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"),
                         [(300, 1_000, 330, 1_000), (5, 80, 20, 90), (700, 70_000, 800, 65_000)])
def test_z_squared_is_the_two_by_two_chi_square(k1: int, n1: int, k2: int, n2: int) -> None:
    z, p = two_proportion_z(k1, n1, k2, n2)
    table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
    expected = stats.chi2_contingency(table, correction=False)
    assert z**2 == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_a_constant_column_has_no_evidence() -> None:
    assert two_proportion_z(0, 100, 0, 50) == (0.0, 1.0)


@pytest.mark.parametrize("as_type", [float, int, bool, str])
def test_binary_columns_of_any_type_from_a_profile(as_type: type) -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(7_001) < 0.3).astype(as_type)
    b = (rng.random(3_000) < 0.4).astype(as_type)
    result = TwoProportionZTest().compare(profile_of(a), b)
    # numbers: the larger value; booleans and text are categories: the most frequent one
    positive = a.max() if as_type in (float, int) else (False if as_type is bool else "False")
    k_ref, k_cur = int(np.sum(a == positive)), int(np.sum(b == positive))
    z, _ = two_proportion_z(k_ref, a.size, k_cur, b.size)
    assert result.statistic == pytest.approx(z, rel=1e-10)
    assert result.effect == pytest.approx(cohen_h(k_ref / a.size, k_cur / b.size))


def test_the_profile_grid_of_a_binary_column_holds_one_interpolated_value() -> None:
    a = np.array([0.0] * 670 + [1.0] * 330)  # p_67 falls between them
    data = numeric_column(profile_of(a), a)
    assert data.reference.values.size == 3 and data.reference.is_binary
    assert not numeric_column(profile_of(np.repeat([0.0, 0.5, 1.0], 300)), a).reference.is_binary


def test_a_column_with_more_values_is_refused() -> None:
    with pytest.raises(ValidationError, match="binary"):
        TwoProportionZTest().compare(["a", "b", "c"], ["a"])
    with pytest.raises(ValidationError, match="binary"):
        TwoProportionZTest().compare(np.arange(10.0), [1.0])


def test_unseen_values_count_as_not_positive() -> None:
    result = TwoProportionZTest().compare(["yes"] * 60 + ["no"] * 40, ["yes"] * 30 + ["maybe"] * 70)
    assert result.statistic == pytest.approx(two_proportion_z(60, 100, 30, 100)[0])
