"""The cells the binned distances share, and their χ² significance gate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from keepwell.stats.drift.binned import binned_counts
from keepwell.stats.drift.columns import categorical_column, numeric_column
from keepwell.stats.drift.population_stability import PopulationStabilityIndex

from .samples import profile_of


def test_numeric_cells_are_the_profile_deciles_with_open_ends() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5_000), rng.normal(0.3, 1.5, 3_000)
    profile = profile_of(a)
    reference, current = binned_counts(numeric_column(profile, b))
    edges = np.array(profile.bin_edges)
    open_edges = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
    assert reference.tolist() == np.histogram(a, bins=edges)[0].tolist()
    assert current.tolist() == np.histogram(b, bins=open_edges)[0].tolist()
    assert current.sum() == b.size  # values beyond the reference's range count too


def test_raw_numeric_values_are_binned_as_a_profile_would_be() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, 1, 4_000), rng.gamma(2, 1, 1_000)
    raw, stored = numeric_column(a, b), numeric_column(profile_of(a), b)
    assert raw.reference.bin_edges.tolist() == stored.reference.bin_edges.tolist()
    assert binned_counts(raw)[0].tolist() == binned_counts(stored)[0].tolist()


def test_categorical_cells_add_one_for_everything_else() -> None:
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    current = ["a"] * 10 + ["b"] * 10 + ["new"] * 5 + ["newer"] * 5 + [None] * 3
    data = categorical_column(reference, current)
    ref, cur = binned_counts(data)
    assert ref.tolist() == [50, 30, 20, 0]
    assert cur.tolist() == [10, 10, 0, 10]
    assert data.missing == 3


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_the_gate_is_pearsons_chi_square_over_the_same_cells(kind: str) -> None:
    rng = np.random.default_rng(2)
    if kind == "numeric":
        a, b = rng.normal(size=2_000), rng.normal(0.1, 1, 800)
        data = numeric_column(profile_of(a), b)
    else:
        a = rng.choice(list("abcdef"), 2_000)
        b = rng.choice(list("abcdef"), 800, p=[0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
        data = categorical_column(profile_of(a), b)
    table = np.vstack(binned_counts(data))
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert PopulationStabilityIndex().evaluate(data).p_value == pytest.approx(expected,
                                                                              rel=1e-10)


def test_psi_times_effective_size_follows_chi_square_under_no_change() -> None:
    """Yurdakul (2018): n_e·PSI → χ²(k - 1); its mean over deciles is 9."""
    rng = np.random.default_rng(3)
    values = []
    for _ in range(300):
        a, b = rng.normal(size=2_000), rng.normal(size=2_000)
        psi = PopulationStabilityIndex().compare(profile_of(a), b).statistic
        values.append(psi * 1_000)  # n_e = 2000 · 2000 / 4000
    assert np.mean(values) == pytest.approx(9.0, rel=0.1)
