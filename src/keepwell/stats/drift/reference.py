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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value
from keepwell.errors import ValidationError

__all__ = ["CategoricalReference", "CategoricalSummary", "NumericReference", "NumericSummary",
           "Reference", "as_series", "categorical_reference",
           "is_numeric_values", "numeric_reference", "sorted_finite"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
RAW_BINS = 10  # ReferenceProfile.from_frame's default


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


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric reference as arrays: its CDF at its support points, its bins, its moments.

    ``values`` are the distinct grid values (or, for raw values, every distinct value);
    ``cdf`` and ``cdf_below`` the reference CDF at and just below each, and ``bounds`` what the
    grid allows for them: ``(cdf_low, cdf_high, below_low, below_high)``; ``tied`` marks
    values the grid holds more than once.
    ``step`` is the grid step ``1 / (m - 1)``, 0 when the CDF is exact; ``sample`` the sorted
    raw values when it is exact.
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
    UTC), and the number of missing ones (NaN, None, NaT, infinite)."""
    series = as_series(values, what=what)
    if not is_numeric_values(series):
        raise ValidationError(
            f"{what} must be numbers or datetimes, not {series.dtype} values; compare a "
            "categorical column with a categorical test (chisquare, jensenshannon, psi, ...).")
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = pd.to_datetime(series, utc=True)
        series = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    array = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    finite = np.isfinite(array)
    if finite.all():
        array.sort()
        return array, 0
    kept = array[finite]
    kept.sort()
    return kept, int(array.size - kept.size)


def numeric_reference(reference: Reference, *, test: str) -> NumericReference:
    """Read a numeric summary, or summarise raw numeric values at full resolution."""
    if isinstance(reference, NumericSummary):
        return _from_summary(reference)
    if isinstance(reference, CategoricalSummary) or not is_numeric_values(reference):
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
    return NumericReference(
        values=values, cdf=cdf, cdf_below=cdf_below, bounds=(cdf, cdf, cdf_below, cdf_below),
        tied=counts > 1, step=0.0, count=n, missing=missing, mean=float(sample.mean()),
        std=float(sample.std(ddof=1)) if n > 1 else 0.0, bin_edges=edges,
        bin_shares=np.asarray(shares, dtype=np.float64), sample=sample)


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
    return NumericReference(
        values=values, cdf=cdf, cdf_below=cdf_below, bounds=bounds, tied=tied,
        step=1.0 / (m - 1),
        count=int(summary.count), missing=int(summary.missing),
        mean=float(summary.mean if summary.mean is not None else np.nan),
        std=float(summary.std or 0.0),
        bin_edges=np.asarray(summary.bin_edges, dtype=np.float64),
        bin_shares=np.asarray(summary.bin_shares, dtype=np.float64))


def categorical_reference(reference: Reference) -> CategoricalReference:
    """Read a categorical summary, or count raw values (numbers too) as categories."""
    if isinstance(reference, CategoricalSummary):
        if reference.count <= 0:
            raise ValidationError(f"the reference profile of {reference.name!r} has no "
                                  "non-missing values to compare against.")
        return CategoricalReference(
            categories=tuple(reference.categories),
            counts=np.asarray(reference.counts, dtype=np.int64),
            other_count=int(reference.other_count), count=int(reference.count),
            missing=int(reference.missing))
    if isinstance(reference, NumericSummary):
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
