"""Reference profiles checked against numpy and pandas on the ACS employment data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from keepwell.errors import InvalidNameError, ValidationError
from keepwell.registry.profile import CategoricalProfile, NumericProfile, ReferenceProfile


@pytest.fixture(scope="module")
def acs_profile(acs: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_frame(
        acs[["AGEP", "SEX", "RAC1P"]], y=acs["employed"],
        outputs=acs[["prediction", "predicted_probability"]])


def numeric(profile: ReferenceProfile, name: str) -> NumericProfile:
    column = profile.features[name]
    assert isinstance(column, NumericProfile)
    return column


def categorical(profile: ReferenceProfile, name: str) -> CategoricalProfile:
    column = profile.features[name]
    assert isinstance(column, CategoricalProfile)
    return column


# --- numeric columns against numpy ------------------------------------------------------------


@pytest.mark.parametrize("quantiles", [3, 11, 101, 1001])
def test_quantiles_equal_numpy(acs: pd.DataFrame, quantiles: int) -> None:
    profile = ReferenceProfile.from_frame(acs[["AGEP"]], quantiles=quantiles)
    ages = acs["AGEP"].to_numpy()
    expected = np.quantile(ages, np.linspace(0.0, 1.0, quantiles))
    np.testing.assert_array_equal(numeric(profile, "AGEP").quantiles, expected)
    assert len(numeric(profile, "AGEP").quantiles) == quantiles


@pytest.mark.parametrize("bins", [2, 10, 37])
def test_bin_edges_equal_unique_numpy_quantiles(acs: pd.DataFrame, bins: int) -> None:
    profile = ReferenceProfile.from_frame(acs[["AGEP"]], bins=bins)
    ages = acs["AGEP"].to_numpy()
    expected = np.unique(np.quantile(ages, np.linspace(0.0, 1.0, bins + 1)))
    np.testing.assert_array_equal(numeric(profile, "AGEP").bin_edges, expected)
    assert profile.bins == bins


def test_ages_have_tied_quantiles_so_fewer_edges_than_bins(acs: pd.DataFrame) -> None:
    # Ages are whole years: with many bins, quantiles repeat and the repeats are dropped.
    age = numeric(ReferenceProfile.from_frame(acs[["AGEP"]], bins=200), "AGEP")
    assert len(age.bin_edges) < 201
    assert list(age.bin_edges) == sorted(set(age.bin_edges))
    assert len(age.bin_shares) == len(age.bin_edges) - 1


@pytest.mark.parametrize("bins", [2, 10, 37])
def test_bin_shares_equal_numpy_histogram(acs: pd.DataFrame, bins: int) -> None:
    age = numeric(ReferenceProfile.from_frame(acs[["AGEP"]], bins=bins), "AGEP")
    ages = acs["AGEP"].to_numpy()
    counts = np.histogram(ages, bins=np.array(age.bin_edges))[0]
    np.testing.assert_allclose(age.bin_shares, counts / ages.size, rtol=0, atol=1e-15)
    assert sum(age.bin_shares) == pytest.approx(1.0, abs=1e-12)
    assert all(share > 0 for share in age.bin_shares)


def test_summary_statistics_equal_numpy(acs_profile: ReferenceProfile, acs: pd.DataFrame) -> None:
    age = numeric(acs_profile, "AGEP")
    ages = acs["AGEP"].to_numpy()
    assert (age.count, age.missing, age.missing_rate) == (ages.size, 0, 0.0)
    assert (age.min, age.max) == (ages.min(), ages.max())
    assert age.mean == pytest.approx(ages.mean(), rel=1e-12)
    assert age.std == pytest.approx(ages.std(ddof=1), rel=1e-12)
    assert age.dtype == "float"


def test_outputs_and_target_are_profiled_like_features(
        acs_profile: ReferenceProfile, acs: pd.DataFrame) -> None:
    assert acs_profile.n_rows == len(acs)
    assert list(acs_profile.features) == ["AGEP", "SEX", "RAC1P"]
    assert list(acs_profile.outputs) == ["prediction", "predicted_probability"]
    proba = acs_profile.outputs["predicted_probability"]
    assert isinstance(proba, NumericProfile)
    expected = np.quantile(acs["predicted_probability"].to_numpy(), np.linspace(0, 1, 101))
    np.testing.assert_array_equal(proba.quantiles, expected)
    target = acs_profile.target
    assert isinstance(target, NumericProfile)
    assert (target.name, target.dtype) == ("employed", "integer")
    assert target.mean == pytest.approx(acs["employed"].mean(), rel=1e-12)


# --- categorical columns against pandas -------------------------------------------------------


@pytest.mark.parametrize("column", ["SEX", "RAC1P"])
def test_category_counts_equal_value_counts(
        acs_profile: ReferenceProfile, acs: pd.DataFrame, column: str) -> None:
    profile = categorical(acs_profile, column)
    expected = acs[column].value_counts()
    assert dict(zip(profile.categories, profile.counts, strict=True)) == expected.to_dict()
    assert list(profile.counts) == sorted(profile.counts, reverse=True)
    assert (profile.count, profile.missing, profile.other_count) == (len(acs), 0, 0)
    assert profile.dtype == "category"


@pytest.mark.parametrize("column", ["SEX", "RAC1P"])
def test_frequencies_sum_to_one(acs_profile: ReferenceProfile, column: str) -> None:
    frequencies = categorical(acs_profile, column).frequencies
    assert sum(frequencies.values()) == pytest.approx(1.0, abs=1e-12)


def test_frequencies_match_pandas_shares(acs_profile: ReferenceProfile, acs: pd.DataFrame) -> None:
    shares = acs["SEX"].value_counts(normalize=True).to_dict()
    frequencies = categorical(acs_profile, "SEX").frequencies
    assert frequencies.keys() == shares.keys()
    for key, share in shares.items():
        assert frequencies[key] == pytest.approx(share, rel=1e-12)


def test_max_categories_pools_the_rarest_races(acs: pd.DataFrame) -> None:
    race = categorical(ReferenceProfile.from_frame(acs[["RAC1P"]], max_categories=3), "RAC1P")
    counts = acs["RAC1P"].value_counts()
    assert race.categories == tuple(counts.index[:3])
    assert race.counts == tuple(int(k) for k in counts.to_numpy()[:3])
    assert race.other_count == int(counts.to_numpy()[3:].sum())
    assert sum(race.counts) + race.other_count == race.count == len(acs)
    assert sum(race.frequencies.values()) + race.other_count / race.count == pytest.approx(1.0)


def test_max_categories_breaks_ties_by_text() -> None:
    values = ["b", "b", "a", "a", "d", "d", "c", "e"]
    X = pd.DataFrame({"s": values})
    profile = categorical(ReferenceProfile.from_frame(X, max_categories=2), "s")
    assert profile.categories == ("a", "b")
    assert profile.counts == (2, 2)
    assert profile.other_count == 4
    full = categorical(ReferenceProfile.from_frame(X), "s")
    assert full.categories == ("a", "b", "d", "c", "e")


def test_ties_between_numbers_are_broken_by_their_text() -> None:
    X = pd.DataFrame({"code": pd.Categorical([9, 10, 2, 2])})
    profile = categorical(ReferenceProfile.from_frame(X), "code")
    assert profile.categories == (2, 10, 9)  # "10" < "9" as text
    assert all(type(c) is int for c in profile.categories)


def test_profile_does_not_depend_on_row_order(acs: pd.DataFrame) -> None:
    frame = acs[["AGEP", "SEX", "RAC1P"]]
    shuffled = frame.sample(frac=1.0, random_state=7)
    assert not shuffled.index.equals(frame.index)
    kwargs = {"bins": 7, "quantiles": 33, "max_categories": 4}
    first = ReferenceProfile.from_frame(frame, **kwargs)
    second = ReferenceProfile.from_frame(shuffled, **kwargs)
    assert first == second
    assert first.to_bytes() == second.to_bytes()


def test_booleans_and_strings_are_categorical() -> None:
    X = pd.DataFrame({
        "flag": [True, False, True, True],
        "maybe": pd.array([True, None, False, True], dtype="boolean"),
        "text": pd.Series(["x", "y", None, "x"], dtype="str"),
        "obj": pd.Series(["u", None, "u", "v"], dtype=object),
    })
    profile = ReferenceProfile.from_frame(X)
    flag = categorical(profile, "flag")
    assert (flag.dtype, flag.categories, flag.counts) == ("boolean", (True, False), (3, 1))
    assert all(type(c) is bool for c in flag.categories)
    maybe = categorical(profile, "maybe")
    assert (maybe.dtype, maybe.count, maybe.missing) == ("boolean", 3, 1)
    assert maybe.frequencies == {True: 2 / 3, False: 1 / 3}
    text = categorical(profile, "text")
    assert (text.dtype, text.categories, text.counts, text.missing) == (
        "string", ("x", "y"), (2, 1), 1)
    obj = categorical(profile, "obj")
    assert (obj.dtype, obj.categories, obj.counts, obj.missing) == ("string", ("u", "v"), (2, 1), 1)
    assert obj.missing_rate == 0.25


# --- missing, constant and unusual columns ----------------------------------------------------


def test_nan_none_and_infinities_count_as_missing() -> None:
    X = pd.DataFrame({"x": [1.0, np.nan, None, np.inf, -np.inf, 2.0, 4.0]})
    x = numeric(ReferenceProfile.from_frame(X, bins=2, quantiles=3), "x")
    assert (x.count, x.missing) == (3, 4)
    assert x.missing_rate == pytest.approx(4 / 7)
    assert (x.min, x.max, x.mean) == (1.0, 4.0, pytest.approx(7 / 3))
    assert x.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert x.quantiles == (1.0, 2.0, 4.0)
    assert x.bin_edges == (1.0, 2.0, 4.0)
    assert x.bin_shares == (pytest.approx(1 / 3), pytest.approx(2 / 3))


def test_nullable_integers_are_numeric_with_missing() -> None:
    X = pd.DataFrame({"n": pd.array([3, None, 1, 2], dtype="Int64")})
    n = numeric(ReferenceProfile.from_frame(X, quantiles=3), "n")
    assert (n.dtype, n.count, n.missing, n.quantiles) == ("integer", 3, 1, (1.0, 2.0, 3.0))


def test_constant_column_has_one_bin_holding_everything() -> None:
    X = pd.DataFrame({"c": [5.0] * 20 + [np.nan]})
    c = numeric(ReferenceProfile.from_frame(X, bins=10, quantiles=5), "c")
    assert c.bin_edges == (5.0,)
    assert c.bin_shares == (1.0,)
    assert (c.levels, c.level_counts) == ((5.0,), (20,))
    assert c.quantiles == (5.0,) * 5
    assert (c.count, c.missing, c.min, c.max, c.mean, c.std) == (20, 1, 5.0, 5.0, 5.0, 0.0)


def test_single_value_has_zero_std() -> None:
    x = numeric(ReferenceProfile.from_frame(pd.DataFrame({"x": [2.5]})), "x")
    assert (x.count, x.std, x.bin_shares) == (1, 0.0, (1.0,))


def test_all_missing_numeric_column() -> None:
    X = pd.DataFrame({"x": [np.nan, np.inf, None]})
    profile = ReferenceProfile.from_frame(X)
    x = numeric(profile, "x")
    assert (x.count, x.missing, x.missing_rate) == (0, 3, 1.0)
    assert (x.min, x.max, x.mean, x.std) == (None, None, None, None)
    assert (x.bin_edges, x.bin_shares, x.quantiles) == ((), (), ())
    assert ReferenceProfile.from_bytes(profile.to_bytes()) == profile


def test_all_missing_categorical_column() -> None:
    X = pd.DataFrame({"s": pd.Series([None, None], dtype=object)})
    profile = ReferenceProfile.from_frame(X)
    s = categorical(profile, "s")
    assert (s.count, s.missing, s.categories, s.frequencies) == (0, 2, (), {})
    assert ReferenceProfile.from_bytes(profile.to_bytes()) == profile


def test_datetime_column_is_profiled_in_epoch_seconds() -> None:
    stamps = pd.to_datetime(["2020-01-03", None, "2020-01-01", "2020-01-02", "2020-01-05"])
    profile = ReferenceProfile.from_frame(pd.DataFrame({"t": stamps}), bins=2, quantiles=5)
    t = numeric(profile, "t")
    seconds = np.array([pd.Timestamp(d).timestamp()
                        for d in ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05"]])
    assert (t.dtype, t.count, t.missing) == ("datetime", 4, 1)
    assert (t.min, t.max) == (seconds.min(), seconds.max())
    np.testing.assert_array_equal(t.quantiles, np.quantile(seconds, np.linspace(0, 1, 5)))
    np.testing.assert_array_equal(t.bin_edges, np.quantile(seconds, [0.0, 0.5, 1.0]))
    assert ReferenceProfile.from_bytes(profile.to_bytes()) == profile


def test_timezone_aware_datetime_column_is_profiled() -> None:
    stamps = pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("UTC")
    t = numeric(ReferenceProfile.from_frame(pd.DataFrame({"t": stamps})), "t")
    assert (t.min, t.max) == (stamps[0].timestamp(), stamps[1].timestamp())


def test_object_column_of_dates_is_profiled_as_datetime() -> None:
    # datetime.date objects, as SQL drivers return them, are times, not categories.
    X = pd.DataFrame({"d": pd.Series([dt.date(2020, 1, 1), dt.date(2020, 1, 2), None],
                                     dtype=object)})
    profile = ReferenceProfile.from_frame(X)
    d = profile.features["d"]
    assert (d.kind, d.dtype, d.count, d.missing) == ("numeric", "datetime", 2, 1)
    assert (d.min, d.max) == (1577836800.0, 1577923200.0)  # seconds since the epoch, UTC
    assert ReferenceProfile.from_bytes(profile.to_bytes()) == profile


# --- serialisation ----------------------------------------------------------------------------


def test_round_trip_through_bytes(acs_profile: ReferenceProfile) -> None:
    data = acs_profile.to_bytes()
    restored = ReferenceProfile.from_bytes(data)
    assert restored == acs_profile
    assert restored.to_bytes() == data
    document = json.loads(data)
    assert document["format_version"] == 2
    assert document["n_rows"] == acs_profile.n_rows
    assert [f["name"] for f in document["features"]] == ["AGEP", "SEX", "RAC1P"]
    assert [f["kind"] for f in document["features"]] == ["numeric", "categorical", "categorical"]
    assert document["target"]["name"] == "employed"


def test_round_trip_keeps_value_types() -> None:
    X = pd.DataFrame({
        "flag": [True, False, True],
        "code": pd.Categorical([3, 1, 3]),
        "s": ["a", "b", None],
        "x": [0.5, np.nan, 1.5],
    })
    profile = ReferenceProfile.from_frame(X, bins=3, quantiles=4, max_categories=1)
    restored = ReferenceProfile.from_bytes(profile.to_bytes())
    assert restored == profile
    assert categorical(restored, "flag").categories == (True,)
    assert categorical(restored, "code").categories == (3,)
    assert categorical(restored, "code").other_count == 1
    assert isinstance(restored.features["x"], NumericProfile)
    assert b"NaN" not in profile.to_bytes()


@pytest.mark.parametrize("version", [3, 0, None, "1", True])
def test_unknown_format_version_asks_to_upgrade(acs_profile: ReferenceProfile,
                                                version: object) -> None:
    document = json.loads(acs_profile.to_bytes())
    document["format_version"] = version
    with pytest.raises(ValidationError, match="upgrade keepwell"):
        ReferenceProfile.from_bytes(json.dumps(document).encode())


def test_missing_format_version_is_refused(acs_profile: ReferenceProfile) -> None:
    document = acs_profile.to_dict()
    del document["format_version"]
    with pytest.raises(ValidationError, match="upgrade keepwell"):
        ReferenceProfile.from_dict(document)


def test_unknown_column_kind_is_refused(acs_profile: ReferenceProfile) -> None:
    document = json.loads(acs_profile.to_bytes())
    document["features"][0]["kind"] = "histogram"
    with pytest.raises(ValidationError, match="'histogram'"):
        ReferenceProfile.from_dict(document)


# --- refused input ----------------------------------------------------------------------------


def test_empty_frame_is_refused() -> None:
    with pytest.raises(ValidationError, match="non-empty"):
        ReferenceProfile.from_frame(pd.DataFrame({"x": pd.Series([], dtype=float)}))


def test_non_frame_is_refused() -> None:
    with pytest.raises(ValidationError, match="DataFrame"):
        ReferenceProfile.from_frame(np.zeros((3, 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize(("bins", "quantiles"), [(1, 101), (0, 101), (-3, 101), (10, 2)])
def test_too_few_bins_or_quantiles_are_refused(bins: int, quantiles: int) -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValidationError, match="bins must be at least 2"):
        ReferenceProfile.from_frame(X, bins=bins, quantiles=quantiles)


def test_two_bins_and_three_quantiles_are_the_minimum() -> None:
    x = numeric(ReferenceProfile.from_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), bins=2,
                                            quantiles=3), "x")
    assert (x.bin_edges, x.quantiles) == ((1.0, 2.0, 3.0), (1.0, 2.0, 3.0))


def test_bad_column_name_is_refused() -> None:
    with pytest.raises(InvalidNameError):
        ReferenceProfile.from_frame(pd.DataFrame({"bad\nname": [1.0]}))


def test_unsupported_dtype_is_refused() -> None:
    X = pd.DataFrame({"wait": pd.to_timedelta([1, 2], unit="s")})
    with pytest.raises(ValidationError, match="'wait'"):
        ReferenceProfile.from_frame(X)


def test_duplicate_columns_are_refused() -> None:
    X = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    with pytest.raises(ValidationError, match="'a'"):
        ReferenceProfile.from_frame(X)


# --- few-valued numeric columns: their values and counts --------------------------------------


def test_few_valued_columns_store_their_values_and_counts(acs_profile: ReferenceProfile,
                                                         acs: pd.DataFrame) -> None:
    """As ``np.unique(values, return_counts=True)``: the 0/1 target and prediction of ACS, a
    Poisson count; not the ages (some 80 values) nor the probabilities."""
    target, prediction = acs_profile.target, acs_profile.outputs["prediction"]
    assert isinstance(target, NumericProfile) and isinstance(prediction, NumericProfile)
    for column, values in ((target, acs["employed"]), (prediction, acs["prediction"])):
        unique, counts = np.unique(values.to_numpy(dtype=float), return_counts=True)
        assert column.levels == tuple(unique) == (0.0, 1.0)
        assert column.level_counts == tuple(int(k) for k in counts)
        assert column.bin_edges == (0.0, 1.0)  # the deciles: one bin
    assert numeric(acs_profile, "AGEP").levels == ()
    assert acs_profile.outputs["predicted_probability"].levels == ()  # type: ignore[union-attr]
    counts = np.random.default_rng(3).poisson(1.5, 10_000)
    poisson = numeric(ReferenceProfile.from_frame(pd.DataFrame({"k": counts})), "k")
    unique, held = np.unique(counts, return_counts=True)
    assert poisson.levels == tuple(float(u) for u in unique)
    assert poisson.level_counts == tuple(int(k) for k in held)
    assert sum(poisson.level_counts) == poisson.count


def test_many_values_or_values_held_once_store_none() -> None:
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"many": rng.integers(0, 21, 1_000), "once": np.arange(1_000.0)})
    X.loc[:9, "once"] = rng.normal(size=10)
    profile = ReferenceProfile.from_frame(X)
    assert numeric(profile, "many").levels == () and numeric(profile, "once").levels == ()
    small = numeric(ReferenceProfile.from_frame(pd.DataFrame({"x": rng.normal(size=8)})), "x")
    assert small.levels == ()  # 8 values, each held once: quantile bins, as before


def test_levels_round_trip_and_are_written_only_where_stored(
        acs_profile: ReferenceProfile) -> None:
    data = acs_profile.to_bytes()
    assert ReferenceProfile.from_bytes(data) == acs_profile
    document = json.loads(data)
    assert "levels" not in document["features"][0]  # AGEP
    assert document["target"]["levels"] == [0.0, 1.0]
    assert document["target"]["level_counts"] == list(acs_profile.target.level_counts)  # type: ignore[union-attr]


def test_a_format_1_profile_still_loads_and_writes_back_unchanged(
        acs_profile: ReferenceProfile) -> None:
    """A document as format 1 wrote it: no levels. It loads, keeps its version, serialises to
    the same bytes, and its columns have no levels (drift tests then read a constant or 0/1
    column's cells from its range and mean: tests/stats/drift/test_binned.py)."""
    document = json.loads(acs_profile.to_bytes())
    document["format_version"] = 1
    for column in [*document["features"], *document["outputs"], document["target"]]:
        column.pop("levels", None)
        column.pop("level_counts", None)
    old = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    profile = ReferenceProfile.from_bytes(old)
    assert profile.format_version == 1 and profile.to_bytes() == old
    assert profile.target is not None and profile.target.levels == ()  # type: ignore[union-attr]
    assert profile.features["AGEP"] == acs_profile.features["AGEP"]
