"""Kolmogorov–Smirnov against ``scipy.stats.ks_2samp`` on the same data.

Tolerances: from raw reference values, D equals scipy's to 1e-12 and so does the p-value up
to 10,000 values a side (scipy's exact distribution). Above, the p-value is Kolmogorov's
limit: never below scipy's ``asymp`` value and within 2.5 % of it. From a profile, D is within
the grid bound ``1 / (m - 1) + 1 / n_ref`` of scipy's D, and the p-value between the p-values
at D ± that bound.
"""

from __future__ import annotations

import warnings
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from keepwell.stats.drift.columns import numeric_column
from keepwell.stats.drift.kolmogorov_smirnov import KolmogorovSmirnov, ks_p_value, ks_statistic

from .samples import profile_of

FAMILIES: dict[str, Any] = {
    "normal": lambda rng, n, s: rng.normal(s, 1, n),
    "lognormal": lambda rng, n, s: rng.lognormal(s, 0.75, n),
    "integers": lambda rng, n, s: np.round(rng.normal(40 + 10 * s, 12, n)),
    "zero-inflated": lambda rng, n, s: np.where(rng.random(n) < 0.3, 0.0,
                                                rng.exponential(1 + s, n)),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 300), (2_000, 700), (9_000, 10_000)])
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_raw_reference_equals_scipy(family: str, n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    a, b = FAMILIES[family](rng, n_ref, 0.0), FAMILIES[family](rng, n_cur, shift)
    ours, theirs = KolmogorovSmirnov().compare(a, b), stats.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-12, abs=1e-300)
    assert ks_statistic(numeric_column(a, b)) == pytest.approx(theirs.statistic, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 60), elements=st.integers(-5, 5).map(float)),
       hnp.arrays(np.float64, st.integers(1, 60),
                  elements=st.floats(-6, 6, allow_nan=False, width=32)))
def test_raw_statistic_equals_scipy_on_any_sample(a: np.ndarray, b: np.ndarray) -> None:
    # ties, single values, integers against floats: the grid of distinct values is exact
    with warnings.catch_warnings():  # scipy's p-value machinery warns on tiny samples; the
        warnings.simplefilter("ignore", RuntimeWarning)  # statistic compared here is exact
        expected = stats.ks_2samp(a, b).statistic
    assert ks_statistic(numeric_column(a, b)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.05])
def test_large_samples_get_a_conservative_limit_within_2_5_percent(shift: float) -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=30_000), rng.normal(shift, 1, 20_000)
    ours, theirs = KolmogorovSmirnov().compare(a, b), stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value is not None
    assert theirs.pvalue <= ours.p_value <= theirs.pvalue * 1.025 + 1e-300


@pytest.mark.parametrize("n_e", [50, 400, 1_000, 1_001, 10_000, 250_000])
@pytest.mark.parametrize("p", [0.9, 0.3, 0.05, 0.01])
def test_p_value_is_smirnov_then_its_conservative_limit(n_e: int, p: float) -> None:
    d = special.kolmogi(p) / np.sqrt(n_e)
    smirnov = stats.kstwo.sf(d, n_e)
    ours = ks_p_value(d, 2 * n_e, 2 * n_e)
    if n_e <= 1_000:
        assert ours == pytest.approx(smirnov, rel=1e-12)
    else:
        assert smirnov <= ours <= smirnov * 1.05
        assert ours == pytest.approx(special.kolmogorov(np.sqrt(n_e) * d), rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("quantiles", [11, 101, 1001])
@pytest.mark.parametrize("n", [500, 50_000])
def test_from_a_profile_d_is_within_the_grid_bound(family: str, quantiles: int, n: int) -> None:
    rng = np.random.default_rng(quantiles + n)
    a, b = FAMILIES[family](rng, n, 0.0), FAMILIES[family](rng, n, 0.1)
    profile = profile_of(a, quantiles=quantiles)
    data = numeric_column(profile, b)
    bound = data.reference.error_bound
    assert bound == pytest.approx(1 / (quantiles - 1) + 1 / n)
    ours, exact = KolmogorovSmirnov().compare(profile, b), stats.ks_2samp(a, b)
    assert abs(ours.statistic - exact.statistic) <= bound
    assert ours.p_value is not None
    upper = ks_p_value(max(exact.statistic - bound, 0.0), n, n)
    lower = ks_p_value(exact.statistic + bound, n, n)
    assert lower <= ours.p_value <= upper


def test_the_atom_rule_halves_the_error_on_integer_data(acs: Any) -> None:
    """Ages are integers: each age an atom the 101-point grid sees only to 0.01."""
    rng = np.random.default_rng(0)
    ages = acs["AGEP"].to_numpy()
    profile = profile_of(ages)
    errors = []
    for _ in range(20):
        current = rng.choice(ages, 20_000)
        exact = stats.ks_2samp(ages, current).statistic
        errors.append(abs(KolmogorovSmirnov().compare(profile, current).statistic - exact))
    assert max(errors) <= 0.5 / 100 + 1 / ages.size
