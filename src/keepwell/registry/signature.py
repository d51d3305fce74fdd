"""A model's signature: the columns it takes and what it predicts, inferred from the frame it
was trained on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from keepwell._values import json_value
from keepwell.errors import InvalidNameError, ValidationError

__all__ = [
    "RESERVED_COLUMNS",
    "ColumnSpec",
    "DType",
    "Signature",
    "Task",
    "check_feature_name",
    "infer_task",
    "is_logbook_column",
]

# Columns the logbook writes beside the features (plus any ``proba_<class>``): a feature may not
# take one of these names.
RESERVED_COLUMNS = frozenset({"request_id", "ts", "model", "version", "arm", "latency_ms",
                              "subject", "prediction", "score", "feedback_id", "received_ts",
                              "event_ts", "label", "label_ts", "label_count"})

DType = Literal["boolean", "integer", "float", "category", "string", "datetime"]
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")

def is_logbook_column(name: object) -> bool:
    """Whether the logbook writes a column of this name beside the features (a reserved name
    or an output ``proba_<class>``)."""
    return name in RESERVED_COLUMNS or str(name).startswith("proba_")


def check_feature_name(name: object) -> str:
    """Feature names may hold any printable text up to 256 characters (reports escape it)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 256 or not name.isprintable():
        raise InvalidNameError(
            f"column name {name!r:.80} is not allowed: column names must be strings of "
            "1-256 printable characters. Rename the column in the training frame."
        )
    if is_logbook_column(name):
        raise InvalidNameError(
            f"column name {name!r} is reserved for the prediction log (as are "
            f"{', '.join(sorted(RESERVED_COLUMNS))} and proba_*); rename the column."
        )
    return name


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then everything else by text: mixed object columns sort
    without a TypeError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def column_dtype(series: pd.Series) -> DType:
    """keepwell's dtype of a pandas column."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(
            series, skipna=True) in ("date", "datetime", "datetime64"):
        return "datetime"  # datetime.date objects, as SQL drivers return them
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise ValidationError(
        f"column {series.name!r} has dtype {dtype}, which keepwell cannot profile; convert it "
        "to a number, a string, a boolean, a category or a datetime."
    )


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, dtype, whether it may be missing, and its seen values."""

    name: str
    dtype: DType
    nullable: bool
    categories: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "nullable": self.nullable}
        if self.categories is not None:
            data["categories"] = list(self.categories)
        if self.min is not None:
            data["min"], data["max"] = self.min, self.max
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        categories = data.get("categories")
        return cls(name=data["name"], dtype=data["dtype"], nullable=data["nullable"],
                   categories=tuple(categories) if categories is not None else None,
                   min=data.get("min"), max=data.get("max"))

    @classmethod
    def from_series(cls, series: pd.Series, *, max_categories: int = 1000) -> ColumnSpec:
        name = check_feature_name(series.name)
        dtype = column_dtype(series)
        nullable = bool(series.isna().any())
        categories: tuple[Any, ...] | None = None
        lo = hi = None
        if dtype == "category":
            categories = tuple(json_value(c) for c in series.cat.categories)
        elif dtype in ("string", "boolean"):
            values = series.dropna().unique()
            if dtype == "boolean" or len(values) <= max_categories:
                categories = tuple(sorted((json_value(v) for v in values), key=_sort_key))
        elif dtype in ("integer", "float"):
            finite = series.to_numpy(dtype=float, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
        return cls(name, dtype, nullable, categories, lo, hi)


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns.

    Examples
    --------
    >>> X = pd.DataFrame({"age": [31.0, 45.0], "sex": pd.Categorical(["f", "m"])})
    >>> sig = Signature.from_frame(X, pd.Series([0, 1], name="employed"), task="binary")
    >>> [c.dtype for c in sig.inputs], sig.classes
    (['float', 'category'], (0, 1))
    """

    inputs: tuple[ColumnSpec, ...]
    task: Task
    target: str | None = None
    classes: tuple[Any, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @classmethod
    def from_frame(
        cls,
        X: pd.DataFrame,
        y: pd.Series | None = None,
        *,
        task: Task | None = None,
        classes: tuple[Any, ...] | None = None,
    ) -> Signature:
        if not isinstance(X, pd.DataFrame):
            raise ValidationError("X must be a pandas DataFrame with named columns.")
        if X.columns.has_duplicates:
            dup = X.columns[X.columns.duplicated()][0]
            raise ValidationError(f"X has the column {dup!r} twice; column names must be unique.")
        inputs = tuple(ColumnSpec.from_series(X[c]) for c in X.columns)
        if task is None:
            if y is None:
                raise ValidationError("pass task= ('binary', 'multiclass' or 'regression') "
                                      "when no target y is given.")
            task = infer_task(y)
        if task not in TASKS:
            raise ValidationError(f"task must be one of {', '.join(TASKS)}, not {task!r}.")
        if classes is None and task != "regression" and y is not None:
            classes = tuple(sorted((json_value(v) for v in pd.unique(y.dropna())), key=_sort_key))
        target = str(y.name) if y is not None and y.name is not None else None
        return cls(inputs, task, target, classes)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs], "task": self.task,
                "target": self.target,
                "classes": list(self.classes) if self.classes is not None else None,
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        classes = data.get("classes")
        return cls(tuple(ColumnSpec.from_dict(c) for c in data["inputs"]), data["task"],
                   data.get("target"), tuple(classes) if classes is not None else None,
                   data.get("extra", {}))


def infer_task(y: pd.Series) -> Task:
    """``binary`` for two classes, ``multiclass`` for a few discrete ones, else ``regression``."""
    values = y.dropna()
    n_unique = values.nunique()
    discrete = not pd.api.types.is_float_dtype(values.dtype) or bool(
        np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if n_unique <= 2:
        return "binary"
    if (discrete and n_unique <= 50) or not pd.api.types.is_numeric_dtype(values.dtype):
        return "multiclass"
    return "regression"
