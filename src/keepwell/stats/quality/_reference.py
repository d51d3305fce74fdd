"""A column's reference: from its profile's summary (read through protocols), or raw values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.quality._expected import Kind
from keepwell.stats.quality._values import read_categories, read_numbers

__all__ = ["CategoryReference", "CategorySummary", "RangeReference", "RangeSummary",
           "column_reference", "reference_columns"]


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
class RangeReference:
    count: int
    missing: int
    min: float | None
    max: float | None


@dataclass(frozen=True)
class CategoryReference:
    count: int
    missing: int
    categories: tuple[Any, ...]
    counts: tuple[int, ...]
    other_count: int


def column_reference(name: str, dtype: str, kind: Kind, summary: Any,
                     allowed: frozenset[int]) -> RangeReference | CategoryReference:
    """A column's reference from its summary, or from raw values summarised exactly."""
    if kind == "numeric":
        if isinstance(summary, RangeSummary):
            return RangeReference(int(summary.count), int(summary.missing),
                                  None if summary.min is None else float(summary.min),
                                  None if summary.max is None else float(summary.max))
        if isinstance(summary, CategorySummary):
            raise ValidationError(f"column {name!r} is {dtype} in the signature, but its "
                                  "reference profile is categorical; pass the profile of the "
                                  "same model version.")
        raw = read_numbers(_as_series(summary, name), dtype, 0)
        finite = raw.values[np.isfinite(raw.values)]
        return RangeReference(int(finite.size), raw.missing + raw.values.size - int(finite.size),
                              float(finite.min()) if finite.size else None,
                              float(finite.max()) if finite.size else None)
    if isinstance(summary, CategorySummary):
        return CategoryReference(int(summary.count), int(summary.missing),
                                 tuple(summary.categories),
                                 tuple(int(k) for k in summary.counts),
                                 int(summary.other_count))
    if isinstance(summary, RangeSummary):
        raise ValidationError(f"column {name!r} is {dtype} in the signature, but its reference "
                              "profile is numeric; pass the profile of the same model version.")
    found = read_categories(_as_series(summary, name), allowed, kind == "boolean", 0)
    return CategoryReference(int(found.counts.sum()), found.missing,
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


def reference_columns(reference: Any) -> Mapping[str, Any] | pd.DataFrame:
    if reference is None:
        return {}
    if isinstance(reference, Mapping | pd.DataFrame):
        return reference
    features = getattr(reference, "features", None)
    if isinstance(features, Mapping):
        return features
    raise ValidationError("reference must be a ReferenceProfile, a mapping of column name to "
                          f"profile or values, or a DataFrame, not {type(reference).__name__}.")

