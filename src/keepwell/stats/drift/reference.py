"""The reference side of a drift comparison: a column's stored summary, read into arrays.

Drift tests compare production data with a model version's reference profile, never with the
raw training data. A summary is anything shaped like :class:`NumericSummary` or
:class:`CategoricalSummary`, as ``keepwell.registry.NumericProfile`` and
``CategoricalProfile`` are (``stats`` sits below the registry, so it names the shape, not the
class).

Raw reference values are accepted too, and summarised at full resolution: a numeric column
keeps every value, so its CDF is the exact empirical CDF and KS and Wasserstein equal scipy's;
its bins are the 10 quantile bins ``ReferenceProfile.from_frame`` would store. A categorical
column keeps every category. Numbers are numeric unless a categorical test reads them.

The reference CDF from a quantile grid
--------------------------------------
A profile stores the quantile function at ``m`` probabilities ``p_k = k / (m - 1)`` (numpy's
linear interpolation). At a grid value ``u`` held by grid points ``a..b`` it tells the reference
CDF to within a step: ``F(u) ∈ [p_b, p_{b+1}]`` and ``F(u-) ∈ [p_{a-1}, p_a]`` (``bounds``;
exact at the two ends, and within ``1 / n`` more for numpy's interpolation between sample
points). Tests that need one value take the middle of what the grid allows for a value it
holds repeatedly (an atom, whose jump the grid sees only to a step) and ``p`` otherwise;
between grid values the CDF is linear. Whatever the data, ``|F_grid - F| <= 1 / (m - 1) + 1 / n``
(0.01 for the default ``m = 101``): the bound on every statistic read from the grid.

Few-valued columns
------------------
A numeric column of at most 20 distinct values, each held by two rows on average (a constant
column always: :func:`few_levels`), keeps its values and their counts (``levels``): the binned
distances then compare one cell per value, and one more for any value the reference never
held, as for categories. Quantile bins would merge them: the deciles of a 0/1 column are 0 and
1, one bin, blind to any change of the share of ones. A profile written before levels were
stored still gives a constant and a two-valued column their cells, from its range and mean.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value
from keepwell.errors import ValidationError

__all__ = ["MAX_LEVELS", "CategoricalReference", "CategoricalSummary", "NumericReference",
           "NumericSummary", "Reference", "as_series", "categorical_reference", "few_levels",
           "float_values", "is_categorical_summary", "is_numeric_summary", "is_numeric_values",
           "levels_of", "numeric_reference", "sorted_finite"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
RAW_BINS = 10  # ReferenceProfile.from_frame's default
MAX_LEVELS = 20  # at most this many distinct values: one cell per value (Evidently's limit)


@runtime_checkable
class NumericSummary(Protocol):
    """What drift tests read from a numeric column summary (``NumericProfile``)."""

    @property
    def name(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def missing(self) -> int: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def mean(self) -> float | None: ...
    @property
    def std(self) -> float | None: ...
    @property
    def bin_edges(self) -> tuple[float, ...]: ...
    @property
    def bin_shares(self) -> tuple[float, ...]: ...
    @property
    def quantiles(self) -> tuple[float, ...]: ...


@runtime_checkable
class CategoricalSummary(Protocol):
    """What drift tests read from a categorical column summary (``CategoricalProfile``)."""

    @property
    def name(self) -> str: ...
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


Reference = NumericSummary | CategoricalSummary | Any  # Any: raw values, array-like

# What the two protocols ask for: checked with hasattr, as isinstance() does for a
# runtime-checkable protocol, without its per-call scan of the protocol's members.
_NUMERIC_ATTRS = tuple(k for k, v in vars(NumericSummary).items() if isinstance(v, property))
_CATEGORICAL_ATTRS = tuple(k for k, v in vars(CategoricalSummary).items()
                           if isinstance(v, property))


def is_numeric_summary(reference: Any) -> TypeGuard[NumericSummary]:
    """``isinstance(reference, NumericSummary)``, faster."""
    return all(hasattr(reference, attr) for attr in _NUMERIC_ATTRS)


def is_categorical_summary(reference: Any) -> TypeGuard[CategoricalSummary]:
    """``isinstance(reference, CategoricalSummary)``, faster."""
    return all(hasattr(reference, attr) for attr in _CATEGORICAL_ATTRS)


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric reference as arrays: its CDF at its support points, its bins, its moments.

    ``values`` are the distinct grid values (or, for raw values, every distinct value);
    ``cdf`` and ``cdf_below`` the reference CDF at and just below each, and ``bounds`` what the
    grid allows for them: ``(cdf_low, cdf_high, below_low, below_high)``; ``tied`` marks
    values the grid holds more than once.
    ``step`` is the grid step ``1 / (m - 1)``, 0 when the CDF is exact; ``sample`` the sorted
    raw values when it is exact. ``levels`` and ``level_counts``: a few-valued column's
    distinct values and their counts (see the module docstring), else ``None``.
    """

    values: FloatArray
    cdf: FloatArray
    cdf_below: FloatArray
    bounds: tuple[FloatArray, FloatArray, FloatArray, FloatArray]
    tied: NDArray[np.bool_]
    step: float
    count: int
    missing: int
    mean: float
    std: float
    bin_edges: FloatArray
    bin_shares: FloatArray
    sample: FloatArray | None = None
    levels: FloatArray | None = None
    level_counts: IntArray | None = None

    @property
    def error_bound(self) -> float:
        """Largest possible error of the reference CDF read here (0 when exact)."""
        return 0.0 if self.sample is not None else self.step + 1.0 / self.count

    @property
    def is_binary(self) -> bool:
        """Whether the column takes two values at most.

        Raw values: two distinct values. A quantile grid of a two-valued column holds both
        values many times and, where its probabilities cross from one to the other, at most
        one value numpy interpolated between them: a grid of three values whose middle one
        is held once, between two held repeatedly, is two-valued too.
        """
        if self.values.size <= 2:
            return True
        return (self.sample is None and self.values.size == 3
                and bool(self.tied[0] and self.tied[2] and not self.tied[1]))

    @property
    def std_population(self) -> float:
        """The standard deviation with ddof=0 (numpy's default, as Evidently normalises)."""
        n = self.count
        return self.std * float(np.sqrt((n - 1) / n)) if n > 1 else 0.0


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """A categorical reference: categories, their counts, and the pooled rare ones."""

    categories: tuple[Any, ...]
    counts: IntArray
    other_count: int
    count: int
    missing: int


def as_series(values: Any, *, what: str) -> pd.Series:
    """1-D values as a pandas Series (no copy for a Series)."""
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pd.Index | pd.Categorical):
        return pd.Series(values)
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValidationError(f"{what} must be one-dimensional, not of shape {array.shape}.")
    return pd.Series(array)


def is_numeric_values(values: Any) -> bool:
    """Whether values are numbers or datetimes (booleans and categories are not)."""
    series = as_series(values, what="values")
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_object_dtype(dtype):
        return pd.api.types.infer_dtype(series, skipna=True) in (
            "integer", "floating", "mixed-integer-float", "decimal", "empty")
    return bool(pd.api.types.is_numeric_dtype(dtype)
                or pd.api.types.is_datetime64_any_dtype(dtype))


def sorted_finite(values: Any, *, what: str) -> tuple[FloatArray, int]:
    """The finite values, sorted, as a new float array (datetimes as seconds since the epoch,
    UTC), and the number of missing ones (NaN, None, NaT, infinite).

    Examples
    --------
    >>> sorted_finite([3.0, float("nan"), 1.0, float("-inf")], what="x")
    (array([1., 3.]), 2)
    """
    ordered = np.sort(float_values(values, what=what))  # a copy: the input stays as it was
    # NaN sorts last, the infinities just before it and first: the finite values are a slice.
    low = int(np.searchsorted(ordered, -np.inf, side="right"))
    high = int(np.searchsorted(ordered, np.inf, side="left"))
    return ordered[low:high], int(ordered.size - (high - low))


def float_values(values: Any, *, what: str) -> FloatArray:
    """Numbers or datetimes as float64, missing ones as NaN; no copy when they already are."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        if values.ndim != 1:
            raise ValidationError(f"{what} must be one-dimensional, not of shape "
                                  f"{values.shape}.")
        return values
    series = as_series(values, what=what)
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype == np.float64:  # NaN is its only missing value
        return series.to_numpy()
    if not is_numeric_values(series):
        raise ValidationError(
            f"{what} must be numbers or datetimes, not {series.dtype} values; compare a "
            "categorical column with a categorical test (chisquare, jensenshannon, psi, ...).")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = pd.to_datetime(series, utc=True)
        series = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def few_levels(count: int, distinct: int) -> bool:
    """Whether ``count`` numeric values, ``distinct`` of them different, get one cell per value:
    at most ``MAX_LEVELS`` (20) distinct values, each held twice on average, or a single one.

    The average keeps a small sample of a continuous variable (every value distinct) on
    quantile bins, where one cell per value would call every new value a change.

    Examples
    --------
    >>> few_levels(1_000, 2), few_levels(8, 8), few_levels(1, 1), few_levels(10**6, 21)
    (True, False, True, False)
    """
    return distinct == 1 or (distinct <= MAX_LEVELS and 2 * distinct <= count)


def levels_of(sample: FloatArray) -> tuple[FloatArray, IntArray] | None:
    """The distinct values of a sorted finite sample and their counts, when it has few
    (:func:`few_levels`); ``None`` otherwise. As ``np.unique(sample, return_counts=True)``.

    Examples
    --------
    >>> levels_of(np.array([0.0, 0.0, 1.0, 1.0, 1.0]))
    (array([0., 1.]), array([2, 3]))
    >>> levels_of(np.arange(5.0)) is None
    True
    """
    n = int(sample.size)
    if n == 0:
        return None
    change = sample[1:] != sample[:-1]
    if not few_levels(n, int(np.count_nonzero(change)) + 1):
        return None
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    return sample[starts], np.diff(np.append(starts, n)).astype(np.int64)


def numeric_reference(reference: Reference, *, test: str) -> NumericReference:
    """Read a numeric summary, or summarise raw numeric values at full resolution (a
    ``NumericReference`` already read is returned as it is)."""
    if isinstance(reference, NumericReference):
        return reference
    if is_numeric_summary(reference):
        return _from_summary(reference)
    if (isinstance(reference, CategoricalReference) or is_categorical_summary(reference)
            or not is_numeric_values(reference)):
        raise ValidationError(f"{test} compares numeric columns, but the reference is "
                              "categorical; choose a test for categorical columns (chisquare, "
                              "jensenshannon, psi, ...).")
    sample, missing = sorted_finite(reference, what="the reference")
    n = int(sample.size)
    if n == 0:
        raise ValidationError("the reference has no non-missing values to compare against.")
    values, counts = np.unique(sample, return_counts=True)
    cumulative = np.cumsum(counts)
    edges = np.unique(np.quantile(sample, np.linspace(0.0, 1.0, RAW_BINS + 1)))
    shares = np.histogram(sample, bins=edges)[0] / n if edges.size > 1 else np.ones(1)
    cdf, cdf_below = cumulative / n, (cumulative - counts) / n
    few = few_levels(n, int(values.size))
    return NumericReference(
        values=values, cdf=cdf, cdf_below=cdf_below, bounds=(cdf, cdf, cdf_below, cdf_below),
        tied=counts > 1, step=0.0, count=n, missing=missing, mean=float(sample.mean()),
        std=float(sample.std(ddof=1)) if n > 1 else 0.0, bin_edges=edges,
        bin_shares=np.asarray(shares, dtype=np.float64), sample=sample,
        levels=values if few else None, level_counts=counts.astype(np.int64) if few else None)


def _from_summary(summary: NumericSummary) -> NumericReference:
    if summary.count <= 0 or not summary.quantiles or not summary.bin_edges:
        raise ValidationError(f"the reference profile of {summary.name!r} has no non-missing "
                              "values to compare against.")
    grid = np.maximum.accumulate(np.asarray(summary.quantiles, dtype=np.float64))
    m = grid.size
    probabilities = np.linspace(0.0, 1.0, m)
    values, first = np.unique(grid, return_index=True)
    last = np.append(first[1:], m) - 1
    tied = last > first
    # The grid says F(u) is in [p_last, p_last+1] and F(u-) in [p_first-1, p_first].
    bounds = (probabilities[last], probabilities[np.minimum(last + 1, m - 1)],
              probabilities[np.maximum(first - 1, 0)], probabilities[first])
    cdf = np.where(tied, (bounds[0] + bounds[1]) / 2, bounds[0])
    cdf_below = np.where(tied, (bounds[2] + bounds[3]) / 2, bounds[3])
    reference = NumericReference(
        values=values, cdf=cdf, cdf_below=cdf_below, bounds=bounds, tied=tied,
        step=1.0 / (m - 1),
        count=int(summary.count), missing=int(summary.missing),
        mean=float(summary.mean if summary.mean is not None else np.nan),
        std=float(summary.std or 0.0),
        bin_edges=np.asarray(summary.bin_edges, dtype=np.float64),
        bin_shares=np.asarray(summary.bin_shares, dtype=np.float64))
    levels = _summary_levels(summary, reference)
    if levels is None:
        return reference
    return replace(reference, levels=levels[0], level_counts=levels[1])


def _summary_levels(summary: NumericSummary, reference: NumericReference
                    ) -> tuple[FloatArray, IntArray] | None:
    """The levels a profile stores; for a profile without them (written before they were
    stored), those of a constant column, and of a two-valued one from its mean (exact: the
    share of the larger value is ``(mean - low) / (high - low)``)."""
    stored = tuple(getattr(summary, "levels", ()) or ())
    if stored:
        counts = tuple(getattr(summary, "level_counts", ()) or ())
        if len(counts) != len(stored) or sum(counts) != summary.count:
            raise ValidationError(f"the reference profile of {summary.name!r} is damaged: its "
                                  f"{len(stored)} levels have {len(counts)} counts summing to "
                                  f"{sum(counts)}, not {summary.count}; register it again.")
        return np.asarray(stored, dtype=np.float64), np.asarray(counts, dtype=np.int64)
    edges, n = reference.bin_edges, reference.count
    if edges.size == 1:
        return edges.copy(), np.array([n], dtype=np.int64)
    if (edges.size == 2 and reference.is_binary and few_levels(n, 2)
            and np.isfinite(reference.mean)):
        share = (reference.mean - edges[0]) / (edges[1] - edges[0])
        high = min(max(round(share * n), 0), n)
        return edges.copy(), np.array([n - high, high], dtype=np.int64)
    return None


def categorical_reference(reference: Reference) -> CategoricalReference:
    """Read a categorical summary, or count raw values (numbers too) as categories (a
    ``CategoricalReference`` already read is returned as it is)."""
    if isinstance(reference, CategoricalReference):
        return reference
    if isinstance(reference, NumericReference):
        raise ValidationError("the reference is numeric, and this test compares categories; "
                              "choose ks, wasserstein or psi.")
    if is_categorical_summary(reference):
        if reference.count <= 0:
            raise ValidationError(f"the reference profile of {reference.name!r} has no "
                                  "non-missing values to compare against.")
        return CategoricalReference(
            categories=tuple(reference.categories),
            counts=np.asarray(reference.counts, dtype=np.int64),
            other_count=int(reference.other_count), count=int(reference.count),
            missing=int(reference.missing))
    if is_numeric_summary(reference):
        raise ValidationError(f"the reference profile of {reference.name!r} is numeric, and "
                              "this test compares categories; choose ks, wasserstein or psi.")
    series = as_series(reference, what="the reference")
    counts = series.value_counts(dropna=True, sort=True)
    if counts.empty:
        raise ValidationError("the reference has no non-missing values to compare against.")
    ordered = sorted(zip(counts.index, counts.to_numpy(), strict=True),
                     key=lambda kv: (-int(kv[1]), str(kv[0])))
    return CategoricalReference(
        categories=tuple(json_value(c) for c, _ in ordered),
        counts=np.array([k for _, k in ordered], dtype=np.int64), other_count=0,
        count=int(counts.sum()), missing=int(series.isna().sum()))
