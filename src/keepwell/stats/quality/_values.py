"""Reading a column's values: its valid numbers or categories, missing values, type errors.

Each value belongs to a family (missing, number, boolean, text, datetime, other), judged by its
type; a dtype accepts some families (the table in :mod:`keepwell.stats.quality`) and every
other non-missing value is a type error. Text, categorical and datetime columns are factorised
once, so their checks look at distinct values, not rows; numbers, mostly distinct, are read as
arrays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import itertools
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value

__all__ = ["BOOL", "DATETIME", "MISSING", "NUMBER", "OTHER", "STR", "Categories", "FloatArray",
           "IntArray", "Numbers", "as_example", "family_of", "read_categories", "read_numbers"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Value families, as small integers so a column's families are one int8 array.
MISSING, NUMBER, BOOL, STR, DATETIME, OTHER = range(6)
_SCAN = 10_000  # bad values looked at for examples
_EPOCH = pd.Timestamp(0, tz="UTC")
_INFERRED_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float"})


@dataclass(frozen=True)
class Numbers:
    values: FloatArray  # the valid values (±inf kept), datetimes as epoch seconds
    missing: int
    type_errors: int
    examples: tuple[Any, ...]


@dataclass(frozen=True)
class Categories:
    uniques: list[Any]  # the distinct valid values
    counts: IntArray
    missing: int
    type_errors: int
    examples: tuple[Any, ...]


@dataclass(frozen=True)
class _Distinct:
    """A column as its distinct non-missing values, each with its family and count, and
    (when asked for) each row's value as an index into them, -1 for missing."""

    uniques: NDArray[Any]
    families: NDArray[np.int8]
    counts: IntArray
    missing: int
    codes: NDArray[np.intp] | None


def family_of(kind: type) -> int:
    if issubclass(kind, bool | np.bool_):
        return BOOL
    if issubclass(kind, str):
        return STR
    if issubclass(kind, dt.timedelta | np.timedelta64):
        return OTHER
    if issubclass(kind, dt.date | np.datetime64):
        return DATETIME
    if issubclass(kind, numbers.Real | decimal.Decimal):
        return NUMBER
    return OTHER


def _dtype_family(dtype: Any) -> int | None:
    """The family of every value of a typed column; ``None`` for object and categorical ones."""
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        return None
    if pd.api.types.is_bool_dtype(dtype):
        return BOOL
    if pd.api.types.is_complex_dtype(dtype):
        return OTHER
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMBER
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATETIME
    return STR if pd.api.types.is_string_dtype(dtype) else OTHER


def _type_families(values: NDArray[Any]) -> NDArray[np.int8]:
    """Each value's family, by its type (one lookup per distinct type)."""
    types = np.fromiter(map(type, values), dtype=object, count=values.size)
    codes, kinds = pd.factorize(types)
    table = np.array([family_of(t) for t in kinds], dtype=np.int8)
    return table[codes] if codes.size else np.empty(0, dtype=np.int8)


def _distinct_values(series: pd.Series, *, codes_needed: bool) -> _Distinct:
    """Factorise once; every check then looks at distinct values, not rows."""
    family = _dtype_family(series.dtype)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.intp)
        uniques = np.asarray(series.cat.categories, dtype=object)
        families = _type_families(uniques)
    elif family is not None and not codes_needed:
        counted = series.value_counts(dropna=True, sort=False)
        uniques = counted.index.to_numpy(dtype=object)
        counts = np.asarray(counted.to_numpy(), dtype=np.int64)
        return _Distinct(uniques, np.full(uniques.size, family, dtype=np.int8), counts,
                         int(series.size - counts.sum()), None)
    else:
        raw = series.to_numpy(dtype=object) if family is None else series
        codes, found = pd.factorize(raw, use_na_sentinel=True)
        uniques = np.asarray(found, dtype=object)
        if family is not None:
            families = np.full(uniques.size, family, dtype=np.int8)
        else:
            families = _type_families(uniques)
            if np.count_nonzero(np.isin([BOOL, NUMBER, OTHER], families)) > 1:
                # factorize took True, 1 and 1.0 (equal in Python) for one value: split by type
                codes, uniques = _split_by_type(np.asarray(raw), codes)
                families = _type_families(uniques)
    counts = np.asarray(np.bincount(codes[codes >= 0], minlength=uniques.size), dtype=np.int64)
    return _Distinct(uniques, families, counts, int(series.size - counts.sum()),
                     codes if codes_needed else None)


def _split_by_type(raw: NDArray[Any], codes: NDArray[np.intp]
                   ) -> tuple[NDArray[np.intp], NDArray[Any]]:
    type_codes = pd.factorize(np.fromiter(map(type, raw), dtype=object, count=raw.size))[0]
    present = codes >= 0
    pairs = codes[present].astype(np.int64) * (int(type_codes.max()) + 1) + type_codes[present]
    _, first_rows, inverse = np.unique(pairs, return_index=True, return_inverse=True)
    new_codes = np.full(codes.size, -1, dtype=np.intp)
    new_codes[present] = inverse.reshape(-1)
    return new_codes, raw[present][first_rows]


def as_example(value: Any) -> Any:
    """A bad value as JSON can hold it: plain, finite, at most 80 characters of text."""
    value = json_value(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


def _distinct(values: Iterable[Any], limit: int) -> tuple[Any, ...]:
    """The first ``limit`` distinct values (by type and text) among the first few thousand."""
    seen: set[tuple[type, str]] = set()
    found: list[Any] = []
    for value in itertools.islice(values, _SCAN):
        if len(found) >= limit:
            break
        key = (type(value), repr(value)[:200])
        if key not in seen:
            seen.add(key)
            found.append(as_example(value))
    return tuple(found)


def _wrong(distinct: _Distinct, bad: NDArray[np.bool_], limit: int) -> tuple[int, tuple[Any, ...]]:
    """How many rows hold the ``bad`` distinct values, and the most frequent of them."""
    index = np.flatnonzero(bad & (distinct.counts > 0))
    order = index[np.argsort(-distinct.counts[index], kind="stable")]
    return int(distinct.counts[index].sum()), _distinct(distinct.uniques[order], limit)


def _all_wrong(series: pd.Series, limit: int) -> Numbers:
    """A column whose dtype cannot hold the expected kind: every present value is an error."""
    missing = np.asarray(series.isna(), dtype=bool)
    present = series[~missing]
    return Numbers(np.empty(0), int(missing.sum()), int(present.size),
                    _distinct(present.iloc[:_SCAN], limit))


def _to_floats(values: NDArray[Any]) -> FloatArray:
    try:
        return values.astype(np.float64)
    except OverflowError:  # an int beyond float's range
        return np.array([float(v) if abs(v) < 1e308 else math.inf if v > 0 else -math.inf
                         for v in values], dtype=np.float64)


def _epoch_seconds(stamps: pd.Series) -> FloatArray:
    seconds = (stamps - _EPOCH) / pd.Timedelta(seconds=1)
    return np.asarray(seconds.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _gather(distinct: _Distinct, per_value: FloatArray) -> FloatArray:
    """Each row's number from one number per distinct value (NaN: not valid)."""
    assert distinct.codes is not None  # asked for
    ok = np.append(~np.isnan(per_value), False)[distinct.codes]
    return np.asarray(per_value[distinct.codes[ok]], dtype=np.float64)


def read_numbers(series: pd.Series, dtype: str, limit: int) -> Numbers:
    """The valid numbers of a numeric column (see the table in :mod:`keepwell.stats.quality`),
    and its errors."""
    if dtype == "datetime":
        return _datetimes(series, limit)
    family = _dtype_family(series.dtype)
    if family is None and pd.api.types.infer_dtype(series, skipna=True) in _INFERRED_NUMBERS:
        with contextlib.suppress(ValueError, OverflowError, TypeError):  # numbers only
            series, family = pd.to_numeric(series), NUMBER
    integral = pd.api.types.is_integer_dtype(series.dtype)
    if family == NUMBER:
        array = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        nan = np.isnan(array)
        missing, errors, examples = int(np.count_nonzero(nan)), 0, ()
        values = array[~nan] if missing else array
    elif family is None:  # row by row: numbers are mostly distinct, factorising them is slow
        raw = series.to_numpy(dtype=object)
        missing_mask = np.asarray(pd.isna(raw), dtype=bool)
        number = (_type_families(raw) == NUMBER) & ~missing_mask
        bad = ~number & ~missing_mask
        values = _to_floats(raw[number])
        missing, errors = int(np.count_nonzero(missing_mask)), int(np.count_nonzero(bad))
        examples = _distinct(raw[bad][:_SCAN], limit) if errors else ()
    else:
        return _all_wrong(series, limit)
    if dtype == "integer" and not integral:
        fractional = np.isfinite(values) & (values != np.trunc(values))
        n_fractional = int(np.count_nonzero(fractional))
        if n_fractional:
            errors += n_fractional
            examples = (examples + _distinct(values[fractional][:_SCAN].tolist(), limit))[:limit]
            values = values[~fractional]
    return Numbers(values, missing, errors, examples)


def _datetimes(series: pd.Series, limit: int) -> Numbers:
    """Datetimes (naive ones taken as UTC, as the profile does) as seconds since the epoch."""
    family = _dtype_family(series.dtype)
    if family == DATETIME:
        seconds = _epoch_seconds(pd.to_datetime(series, utc=True))
        nat = np.isnan(seconds)
        return Numbers(seconds[~nat], int(np.count_nonzero(nat)), 0, ())
    if family not in (None, STR):
        return _all_wrong(series, limit)
    distinct = _distinct_values(series, codes_needed=True)
    candidate = (distinct.families == DATETIME) | (distinct.families == STR)
    per_value = np.full(distinct.uniques.size, np.nan)
    per_value[candidate] = _epoch_seconds(pd.to_datetime(
        pd.Series(distinct.uniques[candidate], dtype=object), utc=True, errors="coerce",
        format="ISO8601"))
    errors, examples = _wrong(distinct, np.isnan(per_value), limit)
    return Numbers(_gather(distinct, per_value), distinct.missing, errors, examples)


def read_categories(series: pd.Series, allowed: frozenset[int], boolean: bool,
                limit: int) -> Categories:
    """The distinct valid values of a categorical or boolean column with their counts."""
    distinct = _distinct_values(series, codes_needed=False)
    uniques = list(distinct.uniques)
    keep = np.isin(distinct.families, list(allowed)) & (distinct.counts > 0)
    if boolean:  # the numbers 0 and 1 are booleans; other numbers are not
        for i in np.flatnonzero(keep & (distinct.families == NUMBER)):
            if uniques[i] in (0, 1):
                uniques[i] = bool(uniques[i])
            else:
                keep[i] = False
    errors, examples = _wrong(distinct, ~keep, limit)
    kept = np.flatnonzero(keep)
    return Categories([uniques[i] for i in kept], distinct.counts[kept], distinct.missing,
                       errors, examples)

