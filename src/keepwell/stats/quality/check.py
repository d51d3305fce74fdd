"""check_quality: a production window's columns against the expected ones and the reference."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.quality._expected import Kind, allowed_families, expected_columns
from keepwell.stats.quality._reference import (
    CategoryReference,
    RangeReference,
    column_reference,
    reference_columns,
)
from keepwell.stats.quality._values import (
    Categories,
    FloatArray,
    Numbers,
    as_example,
    read_categories,
    read_numbers,
)
from keepwell.stats.quality.results import ColumnQuality, QualityReport, RateCheck
from keepwell.stats.quality.significance import judge, out_of_range_p_value, rate_increase_p_value

__all__ = ["check_quality"]


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


def _out_of_range(values: FloatArray, ref: RangeReference, margin: float, dtype: str,
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


def _unseen(found: Categories, ref: CategoryReference, minimum: float,
            limit: int) -> RateCheck:
    known = {json_value(c) for c in ref.categories}
    new = np.fromiter((json_value(u) not in known for u in found.uniques), dtype=bool,
                      count=len(found.uniques))
    count = int(found.counts[new].sum())
    n = int(found.counts.sum())
    new_index = np.flatnonzero(new)
    order = new_index[np.argsort(-found.counts[new_index], kind="stable")][:limit]
    examples = tuple(as_example(found.uniques[i]) for i in order)
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
    allowed = allowed_families(dtype, kind, categories)
    ref = None if summary is None else column_reference(name, dtype, kind, summary, allowed)
    if isinstance(ref, CategoryReference) and kind == "categorical":
        allowed = allowed_families(dtype, kind, ref.categories)
    out_of_range = unseen = unseen_exact = None
    non_finite = 0
    if kind == "numeric":
        numbers_found = read_numbers(series, dtype, limits.examples)
        found: Numbers | Categories = numbers_found
        values = numbers_found.values
        if values.size and not (math.isfinite(values.min()) and math.isfinite(values.max())):
            finite = np.isfinite(values)
            non_finite = int(values.size - np.count_nonzero(finite))
            values = values[finite]
        if isinstance(ref, RangeReference):
            out_of_range = _out_of_range(values, ref, limits.margin, dtype, limits.out_of_range,
                                         limits.examples)
        valid = int(values.size)
    else:
        found = read_categories(series, allowed, kind == "boolean", limits.examples)
        if isinstance(ref, CategoryReference):
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

    See :mod:`keepwell.stats.quality` for every check and the rule that fails a column.

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
    columns = expected_columns(expected)
    references = reference_columns(reference)
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
    judged = judge(partial, alpha)
    failed = bool(missing_columns or duplicate_columns or any(c.problems for c in judged))
    return QualityReport(rows=rows, columns=tuple(judged), missing_columns=missing_columns,
                         extra_columns=extra_columns, duplicate_columns=duplicate_columns,
                         alpha=alpha, failed=failed)


