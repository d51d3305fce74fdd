"""Pairing a reference with current values: counting categories, missing values, sorting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keepwell.stats.drift.columns import categorical_column, column, numeric_column

from .samples import profile_of


@pytest.mark.parametrize("as_categorical", [False, True])
def test_categories_are_counted_against_the_reference(as_categorical: bool) -> None:
    current = pd.Series(["b", "a", None, "zzz", "b", np.nan, "b"])
    if as_categorical:
        current = current.astype("category")
    data = categorical_column(profile_of(np.array(["a", "b", "b", "c"])), current)
    assert data.reference.categories == ("b", "a", "c")
    assert data.current_counts.tolist() == [3, 1, 0, 1]  # ... and 'zzz' among the others
    assert (data.n, data.missing) == (5, 2)


def test_numbers_and_booleans_match_the_stored_categories() -> None:
    booleans = categorical_column(profile_of(np.array([True, False, True])),
                                  np.array([False, False, True]))
    assert booleans.current_counts.tolist() == [1, 2, 0]
    numbers = categorical_column([1, 2, 2, 3], np.array([2.0, 3.0, 4.0]))
    assert numbers.current_counts.tolist() == [1, 0, 1, 1]


def test_numeric_current_values_are_sorted_copies_without_missing() -> None:
    current = np.array([3.0, np.nan, 1.0, np.inf, 2.0])
    data = numeric_column(np.arange(5.0), current)
    assert data.values.tolist() == [1.0, 2.0, 3.0] and data.missing == 2
    assert np.isnan(current[1]) and current[0] == 3.0  # the caller's array is untouched
    clean = np.array([2.0, 1.0])
    numeric_column(np.arange(5.0), clean)
    assert clean.tolist() == [2.0, 1.0]


def test_the_pairing_follows_the_reference_kind() -> None:
    assert type(column(np.arange(3.0), [1.0])).__name__ == "NumericColumn"
    assert type(column(["a", "b"], ["a"])).__name__ == "CategoricalColumn"
    assert type(column(profile_of(np.arange(3)), [1])).__name__ == "NumericColumn"


def test_shared_counts_are_computed_once() -> None:
    data = numeric_column(np.arange(100.0), np.arange(50.0))
    assert data.positions is data.positions and data.current_cdf is data.current_cdf
