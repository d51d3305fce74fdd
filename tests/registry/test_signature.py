"""Signatures: dtypes, nullability, seen values, names, and task inference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from keepwell.errors import InvalidNameError, ValidationError
from keepwell.registry.signature import (
    ColumnSpec,
    Signature,
    check_feature_name,
    column_dtype,
    infer_task,
)


def spec(values: object, name: str = "c", **kwargs: object) -> ColumnSpec:
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    return ColumnSpec.from_series(series.rename(name), **kwargs)  # type: ignore[arg-type]


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("series", "dtype"), [
    (pd.Series([True, False]), "boolean"),
    (pd.Series(pd.array([True, None], dtype="boolean")), "boolean"),
    (pd.Series([1, 2], dtype="int64"), "integer"),
    (pd.Series([1, 2], dtype="uint8"), "integer"),
    (pd.Series(pd.array([1, None], dtype="Int64")), "integer"),
    (pd.Series([1.5, 2.0], dtype="float32"), "float"),
    (pd.Series([1.5, np.nan]), "float"),
    (pd.Series(pd.Categorical(["a", "b"])), "category"),
    (pd.Series(pd.Categorical([1, 2])), "category"),
    (pd.Series(["a", "b"], dtype="str"), "string"),
    (pd.Series(["a", "b"], dtype="string"), "string"),
    (pd.Series(["a", None], dtype=object), "string"),
    (pd.Series(pd.to_datetime(["2020-01-01", None])), "datetime"),
    (pd.Series(pd.to_datetime(["2020-01-01"]).tz_localize("UTC")), "datetime"),
], ids=lambda v: str(v.dtype) if isinstance(v, pd.Series) else v)
def test_column_dtype(series: pd.Series, dtype: str) -> None:
    assert column_dtype(series) == dtype
    assert spec(series).dtype == dtype


@pytest.mark.parametrize("series", [
    pd.Series(pd.to_timedelta([1, 2], unit="s"), name="wait"),
    pd.Series([1 + 2j], name="wait"),
    pd.Series(pd.period_range("2020-01", periods=2, freq="M"), name="wait"),
], ids=["timedelta", "complex", "period"])
def test_unsupported_dtype_is_refused_naming_the_column(series: pd.Series) -> None:
    with pytest.raises(ValidationError, match="'wait'"):
        column_dtype(series)


def test_acs_signature(acs: pd.DataFrame) -> None:
    X = acs[["id", "AGEP", "SEX", "RAC1P"]]
    sig = Signature.from_frame(X, acs["employed"])
    assert sig.feature_names == ["id", "AGEP", "SEX", "RAC1P"]
    assert [c.dtype for c in sig.inputs] == ["integer", "float", "category", "category"]
    assert [c.nullable for c in sig.inputs] == [False] * 4
    assert sig.column("SEX").categories == tuple(acs["SEX"].cat.categories)
    assert sig.column("AGEP").min == acs["AGEP"].min()
    assert sig.column("AGEP").max == acs["AGEP"].max()
    assert (sig.task, sig.target, sig.classes) == ("binary", "employed", (0, 1))
    assert all(type(c) is int for c in sig.classes or ())


# --- nullability and seen values --------------------------------------------------------------


@pytest.mark.parametrize(("values", "nullable"), [
    ([1.0, 2.0], False),
    ([1.0, np.nan], True),
    ([1.0, np.inf], False),  # infinite is a value, not a missing one
    (["a", None], True),
    (pd.Series(pd.array([1, None], dtype="Int64")), True),
    (pd.Series(pd.to_datetime(["2020-01-01", None])), True),
    (pd.Series(pd.Categorical(["a", None])), True),
])
def test_nullable_detection(values: object, nullable: bool) -> None:
    assert spec(values).nullable is nullable


def test_category_dtype_keeps_category_order_including_unseen() -> None:
    series = pd.Series(pd.Categorical(["b", "a"], categories=["z", "b", "a"]))
    assert spec(series).categories == ("z", "b", "a")


def test_integer_categories_become_plain_ints() -> None:
    categories = spec(pd.Series(pd.Categorical([3, 1]))).categories
    assert categories == (1, 3)
    assert all(type(c) is int for c in categories or ())


def test_strings_and_booleans_record_sorted_seen_values() -> None:
    assert spec(["b", "a", None, "b"]).categories == ("a", "b")
    flags = spec([True, False, True]).categories
    assert flags == (False, True)
    assert all(type(f) is bool for f in flags or ())


def test_too_many_strings_record_no_categories() -> None:
    assert spec(["a", "b", "c"], max_categories=2).categories is None
    assert spec(["a", "b", "c"], max_categories=3).categories == ("a", "b", "c")
    # booleans always keep theirs
    assert spec([True, False], max_categories=1).categories == (False, True)


def test_mixed_type_object_column_gets_categories() -> None:
    assert set(spec(pd.Series(["a", 1, None], dtype=object)).categories or ()) == {"a", 1}


def test_numeric_min_max_ignore_nan_and_infinities() -> None:
    s = spec([np.nan, -np.inf, 3.5, -1.0, np.inf, 2.0])
    assert (s.dtype, s.min, s.max) == ("float", -1.0, 3.5)
    i = spec(pd.Series([7, -2, 5], dtype="int64"))
    assert (i.min, i.max) == (-2.0, 7.0)
    assert type(i.min) is float


def test_numeric_with_no_finite_value_has_no_range() -> None:
    s = spec([np.nan, np.inf])
    assert (s.min, s.max) == (None, None)
    assert "min" not in s.to_dict()


def test_other_dtypes_have_no_range_or_categories() -> None:
    s = spec(pd.Series(pd.to_datetime(["2020-01-01", "2021-01-01"])))
    assert (s.categories, s.min, s.max) == (None, None, None)
    assert spec([1.0, 2.0]).categories is None


# --- names and duplicates ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["age", "Âge moyen", "名前", "a b|c`<x>", "x" * 256, " "])
def test_printable_feature_names_are_accepted(name: str) -> None:
    assert check_feature_name(name) == name
    assert spec([1.0], name=name).name == name


@pytest.mark.parametrize("name", ["", "a\nb", "tab\there", "nul\x00", "esc\x1b[31m", "del\x7f",
                                  "cr\r", "x" * 257, 0, None, ("a", "b")])
def test_bad_feature_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidNameError, match="column name"):
        check_feature_name(name)


def test_frame_with_a_bad_column_name_is_refused() -> None:
    with pytest.raises(InvalidNameError):
        Signature.from_frame(pd.DataFrame({"ok": [1], "bad\x07": [2]}), task="regression")
    with pytest.raises(InvalidNameError):
        Signature.from_frame(pd.DataFrame([[1, 2]]), task="regression")  # integer labels


@pytest.mark.parametrize("name", ["csi\x9b31m", "nel\x85"])
def test_c1_control_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_feature_name(name)


def test_duplicate_columns_are_refused() -> None:
    X = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "b", "a"])
    with pytest.raises(ValidationError, match="'a' twice"):
        Signature.from_frame(X, task="regression")


def test_non_frame_is_refused() -> None:
    with pytest.raises(ValidationError, match="DataFrame"):
        Signature.from_frame(np.ones((2, 2)), task="regression")  # type: ignore[arg-type]


# --- the signature object ---------------------------------------------------------------------


def mixed_frame() -> tuple[pd.DataFrame, pd.Series]:
    X = pd.DataFrame({
        "age": [31.0, np.nan, 45.0, 52.0],
        "n": pd.array([1, 2, None, 4], dtype="Int64"),
        "sex": pd.Categorical(["f", "m", "f", None], categories=["m", "f"]),
        "city": ["Boston", "Worcester", None, "Boston"],
        "member": [True, False, False, True],
        "since": pd.to_datetime(["2020-01-01", "2021-06-30", None, "2019-03-15"]),
    })
    return X, pd.Series(["no", "yes", "no", "yes"], name="outcome")


def test_to_dict_from_dict_round_trip_through_json() -> None:
    X, y = mixed_frame()
    sig = Signature.from_frame(X, y)
    data = json.loads(json.dumps(sig.to_dict()))
    restored = Signature.from_dict(data)
    assert restored == sig
    assert restored.to_dict() == sig.to_dict()
    assert data["inputs"][2] == {"name": "sex", "dtype": "category", "nullable": True,
                                 "categories": ["m", "f"]}
    assert data["inputs"][0] == {"name": "age", "dtype": "float", "nullable": True,
                                 "min": 31.0, "max": 52.0}
    assert data["inputs"][5] == {"name": "since", "dtype": "datetime", "nullable": True}
    assert (data["task"], data["target"], data["classes"]) == ("binary", "outcome",
                                                               ["no", "yes"])


def test_round_trip_keeps_extra_and_regression_without_classes() -> None:
    sig = Signature.from_frame(pd.DataFrame({"x": [0.1, 0.2, 0.3]}),
                               pd.Series([0.5, 1.7, 2.9], name="y"))
    assert (sig.task, sig.classes) == ("regression", None)
    with_extra = Signature(sig.inputs, sig.task, sig.target, None, {"note": "é"})
    assert Signature.from_dict(json.loads(json.dumps(with_extra.to_dict()))) == with_extra


def test_from_dict_defaults_missing_optional_fields() -> None:
    sig = Signature.from_dict({"inputs": [{"name": "x", "dtype": "float", "nullable": False}],
                               "task": "regression"})
    assert (sig.target, sig.classes, dict(sig.extra)) == (None, None, {})
    assert sig.inputs == (ColumnSpec("x", "float", False),)


def test_column_lookup() -> None:
    X, y = mixed_frame()
    sig = Signature.from_frame(X, y)
    assert sig.column("city").categories == ("Boston", "Worcester")
    with pytest.raises(KeyError):
        sig.column("nope")


def test_explicit_task_and_classes_win() -> None:
    X, y = mixed_frame()
    sig = Signature.from_frame(X, y, task="multiclass", classes=("yes", "no", "maybe"))
    assert (sig.task, sig.classes) == ("multiclass", ("yes", "no", "maybe"))


def test_task_is_required_without_a_target() -> None:
    X, _ = mixed_frame()
    with pytest.raises(ValidationError, match="task="):
        Signature.from_frame(X)
    sig = Signature.from_frame(X, task="binary")
    assert (sig.target, sig.classes) == (None, None)


def test_unknown_task_is_refused() -> None:
    X, y = mixed_frame()
    with pytest.raises(ValidationError, match="'ranking'"):
        Signature.from_frame(X, y, task="ranking")  # type: ignore[arg-type]


def test_classes_ignore_missing_labels() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    sig = Signature.from_frame(X, pd.Series([2, 0, None, 1], name="k"))
    assert (sig.task, sig.classes) == ("multiclass", (0.0, 1.0, 2.0))


# --- task inference ---------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "task"), [
    ([0, 1, 1, 0], "binary"),
    ([True, False, True], "binary"),
    (["no", "yes", "no"], "binary"),
    ([0.0, 1.0, np.nan, 1.0], "binary"),
    ([1, 1, 1], "binary"),
    ([0, 1, 2, 1, 0], "multiclass"),
    ([0.0, 1.0, 2.0], "multiclass"),
    (["cat", "dog", "fish"], "multiclass"),
    ([f"class{i}" for i in range(80)], "multiclass"),
    (list(range(50)), "multiclass"),
    (list(range(51)), "regression"),
    ([0.5, 1.25, 3.0, 7.75], "regression"),
    ([1.0, 2.0, 2.5], "regression"),
])
def test_infer_task(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values)) == task


def test_infer_task_on_acs(acs: pd.DataFrame) -> None:
    assert infer_task(acs["employed"]) == "binary"
    assert infer_task(acs["RAC1P"]) == "multiclass"
    assert infer_task(acs["predicted_probability"]) == "regression"
    # Whole years, but more than 50 distinct ones: a quantity, not a class label.
    assert acs["AGEP"].nunique() > 50
    assert infer_task(acs["AGEP"]) == "regression"
