"""Data quality of a production window, against a model's signature and reference profile.

:func:`check_quality` checks each column the model expects (a ``Signature``'s inputs, or a
mapping of name to dtype) in a window of production data, and compares what it finds with the
version's reference profile (``ReferenceProfile``, read through protocols: ``stats`` sits below
the registry, so it names the shapes it reads, as :mod:`keepwell.stats.drift.reference` does).

What is checked
---------------
- **Schema.** Expected columns the window lacks (``missing_columns``) and names it holds twice
  (``duplicate_columns``; the first is checked) fail the report; columns beyond the expected
  ones (``extra_columns``) are reported only.
- **Type errors.** Non-missing values that cannot be of the column's dtype, counted per column
  with a few examples. Missing is ``None``, ``NaN``, ``NaT`` or ``pd.NA``.

  ============ ==================================== =====================================
  dtype        accepted                             type errors, for example
  ============ ==================================== =====================================
  ``float``    numbers (numpy, ``Decimal`` too)     ``"3.5"`` (text), ``True``, dates
  ``integer``  numbers without a fractional part    ``2.5``, ``"7"``, ``True``
  ``datetime`` datetimes, dates, ISO 8601 text      ``"yesterday"``, numbers
  ``string``,  text; numbers or booleans when the   ``[1, 2]``, ``b"x"``; ``5`` when every
  ``category`` known categories hold some           known category is text
  ``boolean``  ``True`` / ``False``, and 0 and 1    ``"yes"``, ``2``
  ============ ==================================== =====================================

- **Non-finite values**: ``±inf`` in a numeric column (``NaN`` is missing).
- **Missing rate**, against the reference's.
- **Out of range**: finite numeric values (datetimes as seconds since the epoch, UTC) outside
  the reference's ``[min, max]``, widened by ``range_margin`` times its width on each side.
- **Unseen categories**: values of a categorical or boolean column outside the reference's
  categories. A profile that pooled its rarest categories as ``other_count`` (past
  ``max_categories``) cannot tell a pooled category from a new one: the count is then of
  values outside the *kept* categories, an upper bound on the unseen ones, and
  ``unseen_exact`` is false. The test below stays right either way, because the reference's
  pooled share is the baseline.

The verdict: significant and material
-------------------------------------
Type errors, non-finite values and schema problems are violations whatever their number: any
one fails the column. The three rates are judged like drift
(:mod:`keepwell.stats.drift.verdict`): a rate fails only when its rise over what the reference
leads one to expect is **significant** (Holm-adjusted p-value < ``alpha`` over every rate test
of the report, so an unchanged window fails with probability at most ``alpha`` however many
columns it has) **and material** (the rise is at least ``min_*_increase``, so a negligible
change is not flagged because the window is large). What each test expects and computes:

- *missing*: the reference's missing share, ``missing / (count + missing)``; a one-sided
  Fisher exact test of the 2 × 2 table (missing or not, reference or current): ``p = P(X >=
  k)``, ``X`` hypergeometric (:func:`rate_increase_p_value`). The profile counts training
  infinities as missing too, which only makes the test more cautious.
- *out of range*: with ``n`` reference and ``m`` current values from one continuous
  distribution, every arrangement of the pooled sample is equally likely, so the number ``S``
  of current values below the reference's minimum or above its maximum has the exact,
  distribution-free tail of :func:`out_of_range_p_value`, and its expected share is
  ``2 / (n + 1)``. Ties (discrete values) and a margin only make it rarer: the p-value is then
  an upper bound, so the test stays valid.
- *unseen*: a current value is new when the ``n`` reference values lack its category; the
  reference's own analogue is a value the other ``n - 1`` lack, a category seen once (Good and
  Turing's estimate of the unseen share, ``f1 / n``). The baseline counts those singletons plus
  the pooled ``other_count``, and the same one-sided Fisher test compares the two shares.
  Good-Turing is an estimate, not exact: on a Zipf(1.6) long tail (2,000 reference and 1,000
  current values, 300 unchanged trials) p < 0.05 in 3.7 % of them.

A column fails when it has any problem; the report fails when a column fails or the schema
does. Rates of out-of-range and unseen values are over the column's valid values; the others
over its rows.

``alpha`` is 0.01, stricter than drift's 0.05: a failed quality check asks someone to look at
a pipeline, and a monitor checks every window. Of 2,080 unchanged windows drawn like those of
``tests/stats/test_quality.py`` (7 columns; 50, 2,000 and 50,000 rows), 2 failed.
Evidently 0.7.23's ``MissingValueCount`` with a reference instead requires the count and the
share to equal the reference's within 10 %: against 5,000 reference rows with 5 % missing,
windows of 2,000 rows from the same distribution fail the share test 35 times in 100
(measured), and every window of another size fails the count test.

Cost: one pass per numeric column (missing values, then min and max: the comparisons with
the range run only when a value falls outside it) and one hash of each other column, whose
distinct values are then checked once each. 1,000,000 rows × 60 columns (50 numeric, 10 of
20 categories) take 0.86 s here with pandas' Arrow strings and 1.5 s with object strings; the
50 numeric columns 0.23 s.

Source: Fisher, R. A. (1935), *The Design of Experiments* (the exact test); Good, I. J. (1953),
"The population frequencies of species and the estimation of population parameters",
Biometrika 40 (the unseen share); Holm, S. (1979) (the adjustment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import itertools
import math
import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.drift.verdict import holm

__all__ = ["CategorySummary", "ColumnQuality", "ExpectedColumn", "Kind", "QualityReport",
           "RangeSummary", "RateCheck", "check_quality", "out_of_range_p_value",
           "rate_increase_p_value"]

Kind = Literal["numeric", "categorical", "boolean"]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# dtype (a Signature's, or a kind as shorthand) -> (dtype, kind)
_DTYPES: dict[str, tuple[str, Kind]] = {
    "integer": ("integer", "numeric"), "float": ("float", "numeric"),
    "datetime": ("datetime", "numeric"), "numeric": ("float", "numeric"),
    "category": ("category", "categorical"), "string": ("string", "categorical"),
    "categorical": ("category", "categorical"), "boolean": ("boolean", "boolean"),
}
# Value families, as small integers so a column's families are one int8 array.
_MISSING, _NUMBER, _BOOL, _STR, _DATETIME, _OTHER = range(6)
_SCAN = 10_000  # bad values looked at for examples
_EPOCH = pd.Timestamp(0, tz="UTC")
_INFERRED_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float"})


@runtime_checkable
class ExpectedColumn(Protocol):
    """An expected column (``keepwell.registry.ColumnSpec``): its name and dtype."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...


@runtime_checkable
class RangeSummary(Protocol):
    """What the range and missing checks read from a numeric summary (``NumericProfile``)."""

    @property
    def count(self) -> int: ...
    @property
    def missing(self) -> int: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


@runtime_checkable
class CategorySummary(Protocol):
    """What the category and missing checks read from a ``CategoricalProfile``."""

    @property
    def count(self) -> int: ...
    @property
    def missing(self) -> int: ...
    @property
    def categories(self) -> tuple[Any, ...]: ...
    @property
    def counts(self) -> tuple[int, ...]: ...
    @property
    def other_count(self) -> int: ...


@dataclass(frozen=True)
class RateCheck:
    """A count of one kind of bad value, its share, and the test of its rise.

    ``rate = count / n``; ``expected_rate`` is the reference's rate (missing) or the share
    expected by chance from the reference (out of range, unseen), ``None`` without a
    reference; ``flagged`` is ``p_value_adjusted < alpha and increase >= min_increase``.
    ``examples`` are a few bad values, the worst or most frequent first.
    """

    count: int
    n: int
    rate: float
    expected_rate: float | None
    p_value: float | None
    p_value_adjusted: float | None
    min_increase: float
    flagged: bool
    examples: tuple[Any, ...] = ()

    @property
    def increase(self) -> float | None:
        """``rate - expected_rate``."""
        return None if self.expected_rate is None else self.rate - self.expected_rate

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {**_fields(self), "increase": self.increase}


@dataclass(frozen=True)
class ColumnQuality:
    """The quality of one expected column in the window.

    ``problems`` names what failed, among ``type_errors``, ``non_finite``, ``missing_rate``,
    ``out_of_range`` and ``unseen_categories``. ``out_of_range`` is set for numeric columns and
    ``unseen`` for categorical and boolean ones when the reference has the column.
    """

    name: str
    kind: Kind
    dtype: str
    observed_dtype: str
    rows: int
    valid: int
    type_errors: int
    type_error_examples: tuple[Any, ...]
    non_finite: int
    missing: RateCheck
    out_of_range: RateCheck | None
    unseen: RateCheck | None
    unseen_exact: bool | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def type_error_rate(self) -> float:
        return self.type_errors / self.rows if self.rows else 0.0

    @property
    def non_finite_rate(self) -> float:
        return self.non_finite / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {**_fields(self), "ok": self.ok, "type_error_rate": self.type_error_rate,
                "non_finite_rate": self.non_finite_rate}


@dataclass(frozen=True)
class QualityReport:
    """Every expected column's quality and the schema problems of one window.

    ``failed`` when an expected column is missing or duplicated, or any column has a problem
    (see the module docstring for the rule); extra columns are reported, never fatal.
    """

    rows: int
    columns: tuple[ColumnQuality, ...]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    duplicate_columns: tuple[str, ...]
    alpha: float
    failed: bool

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.problems)

    def __getitem__(self, name: str) -> ColumnQuality:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``json.dumps(..., allow_nan=False)`` takes it)."""
        return {**_fields(self), "ok": self.ok, "failed_columns": list(self.failed_columns)}


def _fields(result: Any) -> dict[str, Any]:
    """A result's fields as plain JSON values: nested results as dicts, tuples as lists."""
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value.to_dict() if hasattr(value, "to_dict") else value
    return {f.name: plain(getattr(result, f.name)) for f in dataclasses.fields(result)}


def rate_increase_p_value(k_reference: int, n_reference: int, k_current: int,
                          n_current: int) -> float:
    """One-sided Fisher exact p-value that the current share ``k/n`` exceeds the reference's.

    ``p = P(X >= k_current)``, ``X`` hypergeometric: ``n_current`` draws from ``N = n_ref +
    n_cur`` items of which ``K = k_ref + k_cur`` are counted. Equal to
    ``scipy.stats.fisher_exact(table, alternative="greater")``.

    Examples
    --------
    >>> round(rate_increase_p_value(5, 100, 15, 100), 4)
    0.0159
    >>> rate_increase_p_value(10, 100, 0, 50)
    1.0
    """
    if k_current <= 0 or n_current <= 0:
        return 1.0
    total = n_reference + n_current
    counted = k_reference + k_current
    p = float(stats.hypergeom.sf(k_current - 1, total, counted, n_current))
    return min(max(p, 0.0), 1.0)


def out_of_range_p_value(k: int, n_reference: int, n_current: int) -> float:
    """``P(S >= k)`` for ``S`` current values outside the range of ``n_reference`` values when
    all ``N = n_ref + n_cur`` come from one continuous distribution (exact, distribution-free).

    Every arrangement of the pooled sample is equally likely, so the chance that the lowest
    ``a`` and the highest ``b`` are all current is ``g(a + b)``, ``g(s) = C(n_cur, s) / C(N,
    s)``; summing over ``a + b = s`` gives ``P(S >= k) = (k + 1)·g(k) - k·g(k + 1) = g(k)·(1 +
    k·n_ref / (N - k))``. With ties or a widened range ``S`` can only be smaller, so this is
    then an upper bound.

    Examples
    --------
    >>> round(out_of_range_p_value(1, 99, 1), 4)   # 2 chances in 100
    0.02
    >>> f"{out_of_range_p_value(12, 5_000, 2_000):.1e}"
    '2.8e-06'
    """
    if k <= 0 or n_reference <= 0:
        return 1.0
    if k > n_current:
        return 0.0
    total = n_reference + n_current
    log_g = (math.lgamma(n_current + 1) - math.lgamma(n_current - k + 1)
             - math.lgamma(total + 1) + math.lgamma(total - k + 1))
    return min(1.0, math.exp(log_g) * (1.0 + k * n_reference / (total - k)))


# --- reading values -----------------------------------------------------------------------

@dataclass(frozen=True)
class _Numbers:
    values: FloatArray  # the valid values (±inf kept), datetimes as epoch seconds
    missing: int
    type_errors: int
    examples: tuple[Any, ...]


@dataclass(frozen=True)
class _Categories:
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


def _family(kind: type) -> int:
    if issubclass(kind, bool | np.bool_):
        return _BOOL
    if issubclass(kind, str):
        return _STR
    if issubclass(kind, dt.timedelta | np.timedelta64):
        return _OTHER
    if issubclass(kind, dt.date | np.datetime64):
        return _DATETIME
    if issubclass(kind, numbers.Real | decimal.Decimal):
        return _NUMBER
    return _OTHER


def _dtype_family(dtype: Any) -> int | None:
    """The family of every value of a typed column; ``None`` for object and categorical ones."""
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        return None
    if pd.api.types.is_bool_dtype(dtype):
        return _BOOL
    if pd.api.types.is_complex_dtype(dtype):
        return _OTHER
    if pd.api.types.is_numeric_dtype(dtype):
        return _NUMBER
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _DATETIME
    return _STR if pd.api.types.is_string_dtype(dtype) else _OTHER


def _type_families(values: NDArray[Any]) -> NDArray[np.int8]:
    """Each value's family, by its type (one lookup per distinct type)."""
    types = np.fromiter(map(type, values), dtype=object, count=values.size)
    codes, kinds = pd.factorize(types)
    table = np.array([_family(t) for t in kinds], dtype=np.int8)
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
            if np.count_nonzero(np.isin([_BOOL, _NUMBER, _OTHER], families)) > 1:
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


def _example(value: Any) -> Any:
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
            found.append(_example(value))
    return tuple(found)


def _wrong(distinct: _Distinct, bad: NDArray[np.bool_], limit: int) -> tuple[int, tuple[Any, ...]]:
    """How many rows hold the ``bad`` distinct values, and the most frequent of them."""
    index = np.flatnonzero(bad & (distinct.counts > 0))
    order = index[np.argsort(-distinct.counts[index], kind="stable")]
    return int(distinct.counts[index].sum()), _distinct(distinct.uniques[order], limit)


def _all_wrong(series: pd.Series, limit: int) -> _Numbers:
    """A column whose dtype cannot hold the expected kind: every present value is an error."""
    missing = np.asarray(series.isna(), dtype=bool)
    present = series[~missing]
    return _Numbers(np.empty(0), int(missing.sum()), int(present.size),
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


def _numbers(series: pd.Series, dtype: str, limit: int) -> _Numbers:
    """The valid numbers of a numeric column (see the module's table), and its errors."""
    if dtype == "datetime":
        return _datetimes(series, limit)
    family = _dtype_family(series.dtype)
    if family is None and pd.api.types.infer_dtype(series, skipna=True) in _INFERRED_NUMBERS:
        with contextlib.suppress(ValueError, OverflowError, TypeError):  # numbers only
            series, family = pd.to_numeric(series), _NUMBER
    integral = pd.api.types.is_integer_dtype(series.dtype)
    if family == _NUMBER:
        array = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        nan = np.isnan(array)
        missing, errors, examples = int(np.count_nonzero(nan)), 0, ()
        values = array[~nan] if missing else array
    elif family is None:  # row by row: numbers are mostly distinct, factorising them is slow
        raw = series.to_numpy(dtype=object)
        missing_mask = np.asarray(pd.isna(raw), dtype=bool)
        number = (_type_families(raw) == _NUMBER) & ~missing_mask
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
    return _Numbers(values, missing, errors, examples)


def _datetimes(series: pd.Series, limit: int) -> _Numbers:
    """Datetimes (naive ones taken as UTC, as the profile does) as seconds since the epoch."""
    family = _dtype_family(series.dtype)
    if family == _DATETIME:
        seconds = _epoch_seconds(pd.to_datetime(series, utc=True))
        nat = np.isnan(seconds)
        return _Numbers(seconds[~nat], int(np.count_nonzero(nat)), 0, ())
    if family not in (None, _STR):
        return _all_wrong(series, limit)
    distinct = _distinct_values(series, codes_needed=True)
    candidate = (distinct.families == _DATETIME) | (distinct.families == _STR)
    per_value = np.full(distinct.uniques.size, np.nan)
    per_value[candidate] = _epoch_seconds(pd.to_datetime(
        pd.Series(distinct.uniques[candidate], dtype=object), utc=True, errors="coerce",
        format="ISO8601"))
    errors, examples = _wrong(distinct, np.isnan(per_value), limit)
    return _Numbers(_gather(distinct, per_value), distinct.missing, errors, examples)


def _categories(series: pd.Series, allowed: frozenset[int], boolean: bool,
                limit: int) -> _Categories:
    """The distinct valid values of a categorical or boolean column with their counts."""
    distinct = _distinct_values(series, codes_needed=False)
    uniques = list(distinct.uniques)
    keep = np.isin(distinct.families, list(allowed)) & (distinct.counts > 0)
    if boolean:  # the numbers 0 and 1 are booleans; other numbers are not
        for i in np.flatnonzero(keep & (distinct.families == _NUMBER)):
            if uniques[i] in (0, 1):
                uniques[i] = bool(uniques[i])
            else:
                keep[i] = False
    errors, examples = _wrong(distinct, ~keep, limit)
    kept = np.flatnonzero(keep)
    return _Categories([uniques[i] for i in kept], distinct.counts[kept], distinct.missing,
                       errors, examples)


# --- the reference ------------------------------------------------------------------------

@dataclass(frozen=True)
class _RangeReference:
    count: int
    missing: int
    min: float | None
    max: float | None


@dataclass(frozen=True)
class _CategoryReference:
    count: int
    missing: int
    categories: tuple[Any, ...]
    counts: tuple[int, ...]
    other_count: int


def _reference(name: str, dtype: str, kind: Kind, summary: Any,
               allowed: frozenset[int]) -> _RangeReference | _CategoryReference:
    """A column's reference from its summary, or from raw values summarised exactly."""
    if kind == "numeric":
        if isinstance(summary, RangeSummary):
            return _RangeReference(int(summary.count), int(summary.missing),
                                   None if summary.min is None else float(summary.min),
                                   None if summary.max is None else float(summary.max))
        if isinstance(summary, CategorySummary):
            raise ValidationError(f"column {name!r} is {dtype} in the signature, but its "
                                  "reference profile is categorical; pass the profile of the "
                                  "same model version.")
        raw = _numbers(_as_series(summary, name), dtype, 0)
        finite = raw.values[np.isfinite(raw.values)]
        return _RangeReference(int(finite.size), raw.missing + raw.values.size - int(finite.size),
                               float(finite.min()) if finite.size else None,
                               float(finite.max()) if finite.size else None)
    if isinstance(summary, CategorySummary):
        return _CategoryReference(int(summary.count), int(summary.missing),
                                  tuple(summary.categories),
                                  tuple(int(k) for k in summary.counts),
                                  int(summary.other_count))
    if isinstance(summary, RangeSummary):
        raise ValidationError(f"column {name!r} is {dtype} in the signature, but its reference "
                              "profile is numeric; pass the profile of the same model version.")
    found = _categories(_as_series(summary, name), allowed, kind == "boolean", 0)
    return _CategoryReference(int(found.counts.sum()), found.missing,
                              tuple(json_value(u) for u in found.uniques),
                              tuple(int(k) for k in found.counts), 0)


def _as_series(values: Any, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    array = np.asarray(values, dtype=object) if isinstance(values, list | tuple) \
        else np.asarray(values)
    if array.ndim != 1:
        raise ValidationError(f"the reference of column {name!r} must be a column summary or "
                              f"one-dimensional values, not of shape {array.shape}.")
    return pd.Series(array)


def _reference_columns(reference: Any) -> Mapping[str, Any] | pd.DataFrame:
    if reference is None:
        return {}
    if isinstance(reference, Mapping | pd.DataFrame):
        return reference
    features = getattr(reference, "features", None)
    if isinstance(features, Mapping):
        return features
    raise ValidationError("reference must be a ReferenceProfile, a mapping of column name to "
                          f"profile or values, or a DataFrame, not {type(reference).__name__}.")


def _expected_columns(expected: Any) -> list[tuple[str, str, Kind, tuple[Any, ...] | None]]:
    """``(name, dtype, kind, categories)`` per expected column."""
    if isinstance(expected, Mapping):
        items: list[tuple[Any, Any, Any]] = [(n, d, None) for n, d in expected.items()]
    else:
        specs = getattr(expected, "inputs", expected)
        if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
            raise ValidationError("expected must be a Signature, its inputs, or a mapping of "
                                  "column name to dtype, not " + type(expected).__name__ + ".")
        specs = list(specs)
        if not all(isinstance(s, ExpectedColumn) for s in specs):
            raise ValidationError("expected must hold column specs with a name and a dtype "
                                  "(a Signature's inputs).")
        items = [(s.name, s.dtype, getattr(s, "categories", None)) for s in specs]
    columns = []
    for name, dtype, categories in items:
        if not isinstance(name, str):
            raise ValidationError(f"expected column names must be strings, not {name!r}.")
        if dtype not in _DTYPES:
            raise ValidationError(f"column {name!r} has dtype {dtype!r}; use one of "
                                  f"{', '.join(sorted(_DTYPES))}.")
        canonical, kind = _DTYPES[dtype]
        columns.append((name, canonical, kind,
                        tuple(categories) if categories is not None else None))
    if len({c[0] for c in columns}) != len(columns):
        raise ValidationError("expected names a column twice; name each column once.")
    return columns


def _allowed(dtype: str, kind: Kind, categories: tuple[Any, ...] | None) -> frozenset[int]:
    if kind == "boolean":
        return frozenset({_BOOL, _NUMBER})  # numbers other than 0 and 1 are dropped later
    if categories is None:
        return frozenset({_STR, _NUMBER, _BOOL}) if dtype == "category" else frozenset({_STR})
    return frozenset({_STR} | {_family(type(c)) for c in categories} - {_MISSING, _OTHER})


# --- the checks ---------------------------------------------------------------------------

def _as_frame(frame: Any) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame
    arrow = sys.modules.get("pyarrow")  # only a loaded pyarrow can have made the object
    if arrow is not None and isinstance(frame, arrow.Table | arrow.RecordBatch):
        return frame.to_pandas()  # type: ignore[no-any-return]
    raise ValidationError("frame must be a pandas DataFrame or a pyarrow Table, not "
                          f"{type(frame).__name__}.")


def _check_params(alpha: float, increases: Sequence[float], range_margin: float,
                  max_examples: int) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValidationError(f"alpha must be in (0, 1), not {alpha!r}.")
    for value in increases:
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValidationError(f"each min_*_increase must be a share in [0, 1], not "
                                  f"{value!r}.")
    if not (isinstance(range_margin, int | float) and math.isfinite(range_margin)
            and range_margin >= 0.0):
        raise ValidationError(f"range_margin must be a finite number >= 0, not "
                              f"{range_margin!r}.")
    if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 0:
        raise ValidationError(f"max_examples must be an integer >= 0, not {max_examples!r}.")


def _rate(count: int, n: int, expected: float | None, p: float | None, minimum: float,
          examples: tuple[Any, ...] = ()) -> RateCheck:
    return RateCheck(count=count, n=n, rate=count / n if n else 0.0, expected_rate=expected,
                     p_value=p, p_value_adjusted=None, min_increase=minimum, flagged=False,
                     examples=examples)


def _out_of_range(values: FloatArray, ref: _RangeReference, margin: float, dtype: str,
                  minimum: float, limit: int) -> RateCheck | None:
    if ref.min is None or ref.max is None or ref.count <= 0:
        return None
    width = ref.max - ref.min
    low, high = ref.min - margin * width, ref.max + margin * width
    outside = np.empty(0)
    if values.size and (values.min() < low or values.max() > high):  # else none: skip a pass
        outside = values[(values < low) | (values > high)]
    count = int(outside.size)
    distance = np.maximum(low - outside, outside - high)
    worst = outside[np.argsort(-distance, kind="stable")[:max(limit * 20, 100)]]
    examples = tuple(pd.Timestamp(v, unit="s", tz="UTC").isoformat() if dtype == "datetime"
                     else v for v in list(dict.fromkeys(worst.tolist()))[:limit])
    n = int(values.size)
    p = out_of_range_p_value(count, ref.count, n)
    return _rate(count, n, min(1.0, 2.0 / (ref.count + 1)), p, minimum, examples)


def _unseen(found: _Categories, ref: _CategoryReference, minimum: float,
            limit: int) -> RateCheck:
    known = {json_value(c) for c in ref.categories}
    new = np.fromiter((json_value(u) not in known for u in found.uniques), dtype=bool,
                      count=len(found.uniques))
    count = int(found.counts[new].sum())
    n = int(found.counts.sum())
    new_index = np.flatnonzero(new)
    order = new_index[np.argsort(-found.counts[new_index], kind="stable")][:limit]
    examples = tuple(_example(found.uniques[i]) for i in order)
    # Good-Turing: the reference's own "new" values are its singletons, plus the pooled ones.
    baseline = ref.other_count + sum(1 for k in ref.counts if k == 1)
    expected = baseline / ref.count if ref.count else 0.0
    p = rate_increase_p_value(baseline, ref.count, count, n)
    return _rate(count, n, expected, p, minimum, examples)


@dataclass(frozen=True)
class _Limits:
    missing: float
    out_of_range: float
    unseen: float
    margin: float
    examples: int


def _check_column(series: pd.Series, name: str, dtype: str, kind: Kind,
                  categories: tuple[Any, ...] | None, summary: Any,
                  limits: _Limits) -> ColumnQuality:
    """One column's counts and raw p-values (judged later, with the others)."""
    allowed = _allowed(dtype, kind, categories)
    ref = None if summary is None else _reference(name, dtype, kind, summary, allowed)
    if isinstance(ref, _CategoryReference) and kind == "categorical":
        allowed = _allowed(dtype, kind, ref.categories)
    out_of_range = unseen = unseen_exact = None
    non_finite = 0
    if kind == "numeric":
        numbers_found = _numbers(series, dtype, limits.examples)
        found: _Numbers | _Categories = numbers_found
        values = numbers_found.values
        if values.size and not (math.isfinite(values.min()) and math.isfinite(values.max())):
            finite = np.isfinite(values)
            non_finite = int(values.size - np.count_nonzero(finite))
            values = values[finite]
        if isinstance(ref, _RangeReference):
            out_of_range = _out_of_range(values, ref, limits.margin, dtype, limits.out_of_range,
                                         limits.examples)
        valid = int(values.size)
    else:
        found = _categories(series, allowed, kind == "boolean", limits.examples)
        if isinstance(ref, _CategoryReference):
            unseen = _unseen(found, ref, limits.unseen, limits.examples)
            unseen_exact = ref.other_count == 0
        valid = int(found.counts.sum())
    rows = int(series.size)
    if ref is None:
        missing = _rate(found.missing, rows, None, None, limits.missing)
    else:
        n_ref = ref.count + ref.missing
        missing = _rate(found.missing, rows, ref.missing / n_ref if n_ref else 0.0,
                        rate_increase_p_value(ref.missing, n_ref, found.missing, rows),
                        limits.missing)
    return ColumnQuality(
        name=name, kind=kind, dtype=dtype, observed_dtype=str(series.dtype), rows=rows,
        valid=valid, type_errors=found.type_errors, type_error_examples=found.examples,
        non_finite=non_finite, missing=missing, out_of_range=out_of_range, unseen=unseen,
        unseen_exact=unseen_exact, problems=())


def check_quality(
    frame: Any,
    expected: Any,
    *,
    reference: Any = None,
    alpha: float = 0.01,
    min_missing_increase: float = 0.01,
    min_out_of_range_increase: float = 0.001,
    min_unseen_increase: float = 0.001,
    range_margin: float = 0.0,
    ignore_columns: Iterable[str] = (),
    max_examples: int = 5,
) -> QualityReport:
    """Check a production window's schema, types, missing values, ranges and categories.

    See the module docstring for every check and the rule that fails a column.

    Parameters
    ----------
    frame : pandas DataFrame or pyarrow Table
        The production window, one row per prediction.
    expected : Signature, sequence of ColumnSpec, or mapping of column name to dtype
        The columns the model takes. A dtype is a Signature's (``integer``, ``float``,
        ``datetime``, ``category``, ``string``, ``boolean``) or a kind (``numeric``,
        ``categorical``).
    reference : ReferenceProfile, mapping of column name to profile or values, or DataFrame
        The version's reference profile (``profile.features``), or raw training columns,
        summarised exactly. Without it only the schema, types, non-finite values and missing
        counts are checked; a column it lacks gets those only.
    alpha : float, default 0.01
        Family-wise significance level of the rate tests (Holm over the whole report).
    min_missing_increase : float, default 0.01
        Smallest rise of the missing rate over the reference's that fails (1 point).
    min_out_of_range_increase, min_unseen_increase : float, default 0.001
        Smallest rise of the out-of-range and unseen shares over what the reference leads one
        to expect by chance (one value in a thousand).
    range_margin : float, default 0.0
        Widen the reference range by this multiple of its width on each side.
    ignore_columns : iterable of str
        Columns the window may hold besides the expected ones without being reported (the
        logbook's ``request_id``, ``ts``, ...).
    max_examples : int, default 5
        Bad values kept per check.

    Returns
    -------
    QualityReport

    Raises
    ------
    ValidationError
        ``frame`` is not a DataFrame or Table, ``expected`` names an unknown dtype, the
        reference of a column is of the other kind, or a parameter is out of range.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> train = pd.DataFrame({"age": rng.normal(40, 10, 5_000).round(),
    ...                       "plan": rng.choice(["basic", "plus", "pro"], 5_000)})
    >>> window = pd.DataFrame({"age": rng.normal(40, 10, 1_000).round(),
    ...                        "plan": rng.choice(["basic", "plus", "pro"], 1_000)})
    >>> expected = {"age": "float", "plan": "string"}
    >>> check_quality(window, expected, reference=train).ok
    True
    >>> window.loc[:29, "plan"] = "premium"           # a new plan, 30 rows
    >>> window.loc[:9, "age"] = 400.0                 # 10 ages out of range
    >>> window["age"] = window["age"].astype(object)
    >>> window.loc[10:12, "age"] = "n/a"              # 3 strings in a number column
    >>> report = check_quality(window, expected, reference=train)
    >>> report.ok, report.failed_columns
    (False, ('age', 'plan'))
    >>> report["age"].problems, report["age"].type_errors, report["age"].out_of_range.count
    (('type_errors', 'out_of_range'), 3, 10)
    >>> report["plan"].unseen.count, report["plan"].unseen.examples
    (30, ('premium',))
    """
    _check_params(alpha, (min_missing_increase, min_out_of_range_increase,
                          min_unseen_increase), range_margin, max_examples)
    if isinstance(ignore_columns, str):
        raise ValidationError("ignore_columns must be a list of column names, not one string.")
    data = _as_frame(frame)
    columns = _expected_columns(expected)
    references = _reference_columns(reference)
    rows = int(data.shape[0])

    positions: dict[Any, int] = {}
    for i, label in enumerate(data.columns):
        positions.setdefault(label, i)
    names = {c[0] for c in columns}
    ignored = set(ignore_columns)
    missing_columns = tuple(c[0] for c in columns if c[0] not in positions)
    extra_columns = tuple(str(c) for c in positions if c not in names and c not in ignored)
    duplicates = data.columns[data.columns.duplicated()]
    duplicate_columns = tuple(dict.fromkeys(str(c) for c in duplicates if c in names))

    limits = _Limits(min_missing_increase, min_out_of_range_increase, min_unseen_increase,
                     range_margin, max_examples)
    partial = [_check_column(data.iloc[:, positions[name]], name, dtype, kind, categories,
                             references.get(name), limits)
               for name, dtype, kind, categories in columns if name in positions]
    judged = _judge(partial, alpha)
    failed = bool(missing_columns or duplicate_columns or any(c.problems for c in judged))
    return QualityReport(rows=rows, columns=tuple(judged), missing_columns=missing_columns,
                         extra_columns=extra_columns, duplicate_columns=duplicate_columns,
                         alpha=alpha, failed=failed)


_CHECKS = (("missing", "missing_rate"), ("out_of_range", "out_of_range"),
           ("unseen", "unseen_categories"))


def _judge(columns: list[ColumnQuality], alpha: float) -> list[ColumnQuality]:
    """Holm-adjust every rate test of the report, flag the significant and material ones,
    and list each column's problems."""
    tests = {(i, field): check for i, column in enumerate(columns) for field, _ in _CHECKS
             if (check := getattr(column, field)) is not None and check.p_value is not None}
    adjusted = holm([check.p_value for check in tests.values()]).tolist() if tests else []
    judged_checks = {
        key: dataclasses.replace(check, p_value_adjusted=p,
                                 flagged=p < alpha and check.increase >= check.min_increase)
        for (key, check), p in zip(tests.items(), adjusted, strict=True)}
    judged = []
    for i, column in enumerate(columns):
        missing = judged_checks.get((i, "missing"), column.missing)
        out_of_range = judged_checks.get((i, "out_of_range"), column.out_of_range)
        unseen = judged_checks.get((i, "unseen"), column.unseen)
        problems = [name for name, bad in (
            ("type_errors", column.type_errors > 0), ("non_finite", column.non_finite > 0),
            ("missing_rate", missing.flagged),
            ("out_of_range", out_of_range is not None and out_of_range.flagged),
            ("unseen_categories", unseen is not None and unseen.flagged)) if bad]
        judged.append(dataclasses.replace(column, missing=missing, out_of_range=out_of_range,
                                          unseen=unseen, problems=tuple(problems)))
    return judged
