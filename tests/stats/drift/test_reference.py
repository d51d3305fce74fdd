"""Reading a profile (or raw values) into the reference a drift test compares against."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from keepwell.errors import ValidationError
from keepwell.registry.profile import CategoricalProfile, NumericProfile
from keepwell.stats.drift.reference import (
    MAX_LEVELS,
    CategoricalSummary,
    NumericSummary,
    categorical_reference,
    is_categorical_summary,
    is_numeric_summary,
    levels_of,
    numeric_reference,
    sorted_finite,
)

from .samples import profile_of


def test_the_registrys_profiles_have_the_shape_stats_reads() -> None:
    assert isinstance(profile_of(np.arange(10.0)), NumericProfile | NumericSummary)
    assert isinstance(profile_of(np.arange(10.0)), NumericSummary)
    assert isinstance(profile_of(np.array(["a", "b"])), CategoricalSummary)
    assert isinstance(profile_of(np.array(["a", "b"])), CategoricalProfile)
    assert not isinstance(np.arange(3.0), NumericSummary | CategoricalSummary)


@pytest.mark.parametrize("quantiles", [11, 101, 1001])
@pytest.mark.parametrize("data", ["normal", "integers", "zero-inflated", "three-values"])
def test_the_bounds_hold_the_exact_cdf(quantiles: int, data: str) -> None:
    rng = np.random.default_rng(quantiles)
    values = {"normal": rng.normal(size=5_000),
              "integers": rng.integers(0, 30, 5_000).astype(float),
              "zero-inflated": np.where(rng.random(5_000) < 0.4, 0.0, rng.normal(size=5_000)),
              "three-values": rng.choice([1.0, 2.0, 7.0], 5_000, p=[0.6, 0.395, 0.005])}[data]
    ref = numeric_reference(profile_of(values, quantiles=quantiles), test="ks")
    exact = np.sort(values)
    slack = 1 / values.size + 1e-12
    cdf = np.searchsorted(exact, ref.values, side="right") / values.size
    below = np.searchsorted(exact, ref.values, side="left") / values.size
    cdf_low, cdf_high, below_low, below_high = ref.bounds
    assert np.all((cdf_low - slack <= cdf) & (cdf <= cdf_high + slack))
    assert np.all((below_low - slack <= below) & (below <= below_high + slack))
    assert np.all(cdf_high - cdf_low <= ref.step + 1e-12)
    assert np.all(np.abs(ref.cdf - cdf) <= ref.error_bound + 1e-12)


def test_raw_values_are_summarised_at_full_resolution() -> None:
    values = np.array([3.0, 1.0, np.nan, 2.0, 2.0])
    ref = numeric_reference(values, test="ks")
    assert ref.values.tolist() == [1.0, 2.0, 3.0]
    assert ref.cdf.tolist() == [0.25, 0.75, 1.0] and ref.cdf_below.tolist() == [0.0, 0.25, 0.75]
    assert (ref.count, ref.missing, ref.error_bound) == (4, 1, 0.0)
    assert ref.bin_edges.tolist() == list(profile_of(values).bin_edges)


def test_raw_categories_are_counted_like_a_profile() -> None:
    values = pd.Series(["b", "a", "b", None, "c", "a", "b"])
    ref = categorical_reference(values)
    stored = profile_of(values)
    assert ref.categories == stored.categories and ref.counts.tolist() == list(stored.counts)
    assert (ref.count, ref.missing, ref.other_count) == (6, 1, 0)


def test_datetimes_are_seconds_since_the_epoch_as_in_the_profile() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02", None]))
    values, missing = sorted_finite(stamps, what="x")
    assert values.tolist() == [1704067200.0, 1704153600.0] and missing == 1
    assert profile_of(stamps).min == 1704067200.0


def test_wrong_kinds_and_shapes_are_refused() -> None:
    with pytest.raises(ValidationError, match="numbers or datetimes"):
        sorted_finite(np.array(["1.5", "2"]), what="x")  # text is not silently parsed
    with pytest.raises(ValidationError, match="one-dimensional"):
        sorted_finite(np.ones((2, 2)), what="x")
    with pytest.raises(ValidationError, match="categorical"):
        numeric_reference(profile_of(np.array(["a"])), test="ks")
    with pytest.raises(ValidationError, match="numeric"):
        categorical_reference(profile_of(np.arange(3.0)))
    with pytest.raises(ValidationError, match="no non-missing"):
        numeric_reference(profile_of(np.array([np.nan, np.nan])), test="ks")


@pytest.mark.parametrize("data", ["zero-one", "constant", "poisson", "twenty", "twenty-one",
                                  "small-continuous", "normal"])
def test_levels_are_numpys_unique_values_when_few(data: str) -> None:
    rng = np.random.default_rng(9)
    values = {"zero-one": (rng.random(1_000) < 0.2).astype(float),
              "constant": np.full(7, -1.5),
              "poisson": rng.poisson(1.5, 10_000).astype(float),
              "twenty": rng.integers(0, 20, 40).astype(float),
              "twenty-one": rng.integers(0, 21, 10_000).astype(float),
              "small-continuous": rng.normal(size=30),
              "normal": rng.normal(size=10_000)}[data]
    unique, counts = np.unique(values, return_counts=True)
    few = unique.size == 1 or (unique.size <= MAX_LEVELS and 2 * unique.size <= values.size)
    assert few == (data in ("zero-one", "constant", "poisson", "twenty"))
    found = levels_of(np.sort(values))
    raw = numeric_reference(values, test="psi")
    stored = profile_of(values)
    if few:
        assert found is not None and raw.levels is not None and raw.level_counts is not None
        assert found[0].tolist() == unique.tolist() == raw.levels.tolist()
        assert found[1].tolist() == counts.tolist() == raw.level_counts.tolist()
        assert (stored.levels, stored.level_counts) == (tuple(unique), tuple(counts))
    else:
        assert found is None and raw.levels is None and stored.levels == ()


def test_the_fast_protocol_checks_agree_with_isinstance() -> None:
    candidates = [profile_of(np.arange(10.0)), profile_of(np.array(["a", "b"])),
                  np.arange(3.0), pd.Series([1.0]), [1.0, 2.0], None, "text",
                  numeric_reference(np.arange(3.0), test="ks"),
                  categorical_reference(["a", "b"])]
    for candidate in candidates:
        assert is_numeric_summary(candidate) == isinstance(candidate, NumericSummary)
        assert is_categorical_summary(candidate) == isinstance(candidate, CategoricalSummary)


def test_a_reference_already_read_is_used_as_it_is() -> None:
    numeric = numeric_reference(profile_of(np.arange(10.0)), test="ks")
    categories = categorical_reference(["a", "b", "a"])
    assert numeric_reference(numeric, test="ks") is numeric
    assert categorical_reference(categories) is categories
    with pytest.raises(ValidationError, match="categorical"):
        numeric_reference(categories, test="ks")
    with pytest.raises(ValidationError, match="numeric"):
        categorical_reference(numeric)


@pytest.mark.parametrize("dtype", ["float64", "float32", "Float64", "object"])
def test_sorted_finite_leaves_the_input_as_it_was(dtype: str) -> None:
    values = np.array([2.0, np.nan, -np.inf, 1.0, np.inf, -0.5, np.nan])
    series = pd.Series(values, dtype=dtype) if dtype != "float64" else values
    before = np.array(series, dtype=float, copy=True)
    found, missing = sorted_finite(series, what="x")
    assert found.tolist() == [-0.5, 1.0, 2.0] and missing == 4
    np.testing.assert_array_equal(np.asarray(series, dtype=float), before)


def test_a_damaged_profile_of_levels_is_refused() -> None:
    profile = profile_of(np.array([0.0, 1.0, 1.0, 0.0, 1.0]))
    broken = dataclasses.replace(profile, level_counts=(2, 2))  # sums to 4, not 5
    with pytest.raises(ValidationError, match="damaged"):
        numeric_reference(broken, test="psi")
