"""The frozen results of a quality check: one rate test, one column, one window."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from keepwell.stats.quality._expected import Kind

__all__ = ["ColumnQuality", "QualityReport", "RateCheck"]


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
    (see :mod:`keepwell.stats.quality` for the rule); extra columns are reported, never fatal.
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

