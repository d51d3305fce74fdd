"""The cells the binned distances share, and their χ² significance gate."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keepwell.stats.drift.binned import binned_counts
from keepwell.stats.drift.columns import categorical_column, numeric_column
from keepwell.stats.drift.hellinger import Hellinger
from keepwell.stats.drift.jensen_shannon import JensenShannon
from keepwell.stats.drift.kullback_leibler import KullbackLeibler
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


# --- few-valued numeric columns: one cell per value ---------------------------------------
#
# Checked against cells counted here with np.unique, independently of keepwell; PSI against
# its formula written out (shares floored at 1e-4), JS against scipy's jensenshannon (base 2),
# the gate against scipy's chi2_contingency on the non-empty cells. Tolerance 1e-12 relative.

DISTANCES = (PopulationStabilityIndex, JensenShannon, KullbackLeibler, Hellinger)


def per_value_cells(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per distinct reference value, and a last cell for every other current value."""
    levels, ref_counts = np.unique(reference, return_counts=True)
    values, counts = np.unique(current, return_counts=True)
    held = dict(zip(values.tolist(), counts.tolist(), strict=True))
    cur = np.array([held.get(v, 0) for v in levels.tolist()])
    return np.append(ref_counts, 0), np.append(cur, current.size - cur.sum())


def psi_by_hand(ref: np.ndarray, cur: np.ndarray) -> float:
    p, q = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)
    return float(sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True)))


def chi2_p(ref: np.ndarray, cur: np.ndarray) -> float:
    table = np.vstack([ref, cur])
    return float(stats.chi2_contingency(table[:, table.sum(axis=0) > 0],
                                        correction=False).pvalue)


def format_1(profile: Any) -> Any:
    """The column as a profile written before levels were stored reads it (see
    tests/registry/test_profile.py, which reads such a document)."""
    return dataclasses.replace(profile, levels=(), level_counts=())


def check_cells(reference: Any, a: np.ndarray, b: np.ndarray) -> None:
    expected_ref, expected_cur = per_value_cells(a, b)
    ref, cur = binned_counts(numeric_column(reference, b))
    assert ref.tolist() == expected_ref.tolist() and cur.tolist() == expected_cur.tolist()
    psi = PopulationStabilityIndex().compare(reference, b)
    assert psi.statistic == pytest.approx(psi_by_hand(ref, cur), rel=1e-12)
    assert psi.p_value == pytest.approx(chi2_p(ref, cur), rel=1e-10)
    assert JensenShannon().compare(reference, b).statistic == pytest.approx(
        jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2), rel=1e-12)


@pytest.mark.parametrize("source", ["raw", "profile", "format 1"])
def test_a_zero_one_column_gets_a_cell_per_value(source: str) -> None:
    rng = np.random.default_rng(4)
    a = (rng.random(5_000) < 0.3).astype(float)
    b = (rng.random(2_000) < 0.55).astype(float)
    profile = profile_of(a)
    assert profile.bin_edges == (0.0, 1.0) and profile.bin_shares == (1.0,)  # deciles: one bin
    reference = {"raw": a, "profile": profile, "format 1": format_1(profile)}[source]
    check_cells(reference, a, b)
    for test in DISTANCES:
        assert test().compare(reference, b).drifted, test.name
        unchanged = test().compare(reference, a[:2_000])
        assert not unchanged.drifted and unchanged.p_value > 0.05, test.name


@pytest.mark.parametrize("source", ["raw", "profile", "format 1"])
def test_a_constant_reference_sees_any_other_value(source: str) -> None:
    rng = np.random.default_rng(5)
    a = np.full(1_000, 3.0)
    b = np.where(rng.random(500) < 0.2, rng.choice([2.0, 4.5], 500), 3.0)
    profile = profile_of(a)
    reference = {"raw": a, "profile": profile, "format 1": format_1(profile)}[source]
    check_cells(reference, a, b)
    for test in DISTANCES:
        result = test().compare(reference, b)
        assert result.drifted and result.p_value < 1e-20, test.name
        assert test().compare(reference, a[:500]).statistic == 0.0, test.name


def test_a_poisson_shift_is_seen_with_one_cell_per_value() -> None:
    """Poisson(1.5): the deciles are 0, 1, 2, 3 and the maximum, so 3, 4, ... shared a cell;
    now each value has its own, and λ 1.5 → 2.0 (a third of a standard deviation) drifts by
    PSI and JS, from raw values and from the profile alike."""
    rng = np.random.default_rng(6)
    a = rng.poisson(1.5, 20_000).astype(float)
    b = rng.poisson(2.0, 10_000).astype(float)
    profile = profile_of(a)
    assert len(profile.bin_shares) == 4 and profile.bin_edges[:4] == (0.0, 1.0, 2.0, 3.0)
    assert profile.levels == tuple(np.unique(a).tolist())
    for reference in (a, profile):
        check_cells(reference, a, b)
        for test in (PopulationStabilityIndex, JensenShannon):
            assert test().compare(reference, b).drifted, test.name
    raw, stored = (PopulationStabilityIndex().compare(r, b) for r in (a, profile))
    assert raw.statistic == stored.statistic and raw.p_value == stored.p_value


def test_a_format_1_two_valued_profile_reads_its_counts_from_the_mean() -> None:
    rng = np.random.default_rng(7)
    a = np.where(rng.random(3_001) < 0.37, 5.0, -2.0)
    b = np.where(rng.random(1_000) < 0.5, 5.0, -2.0)
    old, new = format_1(profile_of(a)), profile_of(a)
    assert binned_counts(numeric_column(old, b))[0].tolist() == \
        binned_counts(numeric_column(new, b))[0].tolist()
    assert PopulationStabilityIndex().compare(old, b) == PopulationStabilityIndex().compare(
        new, b)


def test_many_values_or_a_small_continuous_sample_keep_the_quantile_bins() -> None:
    rng = np.random.default_rng(8)
    for a in (rng.integers(0, 21, 5_000).astype(float),  # 21 values
              rng.normal(size=12)):  # 12 values, each held once
        data = numeric_column(a, a)
        assert data.reference.levels is None
        assert len(binned_counts(data)[0]) == len(profile_of(a).bin_shares)
