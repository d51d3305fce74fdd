"""Request bodies: strict JSON, checked against the model's signature, into a DataFrame.

JSON is parsed with orjson, which refuses ``NaN``, ``Infinity`` and numbers out of the float
range. When it refuses, the body is parsed again by the standard library only to say *where*
(a JSON pointer per non-finite value) or, for broken JSON, to give a 400.

Inputs come as records, ``{"inputs": [{"age": 31, ...}, ...]}``, or as columns,
``{"inputs": {"age": [31, ...], ...}}``. Every feature of the signature must be present, no
other key may be, and each value must have the column's type: numbers for numeric columns
(not booleans, not strings such as ``"nan"``), strings for categorical and string columns,
``true``/``false`` for booleans, ISO 8601 text for datetimes. ``null`` is accepted (the model
decides what a missing value means, and the monitor counts them). A category never seen in
training is accepted too and left to the model's encoder; data-quality checks report it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import orjson
import pandas as pd

from keepwell.errors import FieldError, MalformedBodyError, PayloadError
from keepwell.registry.signature import ColumnSpec, Signature

__all__ = ["frame_from_columns", "parse_json", "validate_inputs"]


def _non_finite_pointers(value: Any, pointer: str = "") -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [pointer or "/"]
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in _non_finite_pointers(v, f"{pointer}/{_escape(str(k))}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite_pointers(v, f"{pointer}/{i}")]
    return []


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def parse_json(body: bytes) -> Any:
    """Parse a request body; non-finite numbers are a 422 naming each, broken JSON a 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        loose = json.loads(body, parse_constant=lambda name: float(name.replace("Infinity",
                                                                                  "inf")))
    except (ValueError, RecursionError):
        raise MalformedBodyError("the request body is not valid JSON.") from None
    pointers = _non_finite_pointers(loose)
    if pointers:
        raise PayloadError([FieldError(p, "NaN and infinite numbers are not allowed; send "
                                          "null for a missing value") for p in pointers])
    # Valid for the standard library but not for orjson (e.g. lone surrogates, deep nesting).
    raise MalformedBodyError("the request body is not valid JSON.")


def _check_value(spec: ColumnSpec, value: Any, pointer: str) -> FieldError | None:
    if value is None:
        return None
    if spec.dtype in ("float", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return FieldError(pointer, f"{spec.name!r} must be a number")
    elif spec.dtype == "boolean":
        if not isinstance(value, bool):
            return FieldError(pointer, f"{spec.name!r} must be true or false")
    elif spec.dtype in ("category", "string"):
        if not isinstance(value, str) and not (
                spec.categories and not isinstance(value, bool)
                and isinstance(value, int | float) and value in spec.categories):
            return FieldError(pointer, f"{spec.name!r} must be a string")
    elif spec.dtype == "datetime":
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return FieldError(pointer, f"{spec.name!r} must be an ISO 8601 date-time string")
    return None


def _records_to_columns(records: list[Any], signature: Signature,
                        errors: list[FieldError]) -> dict[str, list[Any]]:
    names = signature.feature_names
    known = set(names)
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(FieldError(f"/inputs/{i}", "each record must be an object"))
            continue
        for key in record.keys() - known:
            errors.append(FieldError(f"/inputs/{i}/{_escape(key)}", f"unknown feature {key!r}"))
        for name in names:
            if name not in record:
                errors.append(FieldError(f"/inputs/{i}/{_escape(name)}",
                                         f"missing feature {name!r}"))
                columns[name].append(None)
            else:
                columns[name].append(record[name])
    return columns


def validate_inputs(inputs: Any, signature: Signature, *, max_rows: int
                    ) -> dict[str, list[Any]]:
    """The ``inputs`` of a request, checked, as one list of values per feature.

    Columns rather than a DataFrame: the micro-batcher joins the columns of many requests and
    builds one DataFrame per batch, which costs far less than one per request.
    """
    errors: list[FieldError] = []
    if isinstance(inputs, list):
        if not inputs:
            raise PayloadError([FieldError("/inputs", "at least one record is needed")])
        if len(inputs) > max_rows:
            raise PayloadError([FieldError("/inputs", f"at most {max_rows} records per request")])
        columns = _records_to_columns(inputs, signature, errors)
        where = "/inputs/{row}/{name}"
    elif isinstance(inputs, dict):
        for key in inputs.keys() - set(signature.feature_names):
            errors.append(FieldError(f"/inputs/{_escape(key)}", f"unknown feature {key!r}"))
        columns = {}
        lengths = set()
        for name in signature.feature_names:
            values = inputs.get(name)
            if not isinstance(values, list):
                errors.append(FieldError(f"/inputs/{_escape(name)}",
                                         f"missing feature {name!r}: give a list of values"))
                continue
            columns[name] = values
            lengths.add(len(values))
        if len(lengths) > 1:
            errors.append(FieldError("/inputs", "all columns must have the same length"))
        if lengths and max(lengths) > max_rows:
            raise PayloadError([FieldError("/inputs", f"at most {max_rows} records per request")])
        if lengths == {0}:
            errors.append(FieldError("/inputs", "at least one record is needed"))
        where = "/inputs/{name}/{row}"
    else:
        raise PayloadError([FieldError("/inputs", "inputs must be a list of records or an object "
                                                  "of columns")])
    for spec in signature.inputs:
        for row, value in enumerate(columns.get(spec.name, ())):
            error = _check_value(spec, value, where.format(row=row, name=_escape(spec.name)))
            if error is not None:
                errors.append(error)
                if len(errors) >= 100:
                    break
    if errors:
        raise PayloadError(errors)
    return columns


def frame_from_columns(columns: dict[str, list[Any]], signature: Signature) -> pd.DataFrame:
    """A DataFrame in the signature's column order, with the training dtypes."""
    data: dict[str, Any] = {}
    for spec in signature.inputs:
        values = columns[spec.name]
        if spec.dtype == "float":
            data[spec.name] = pd.array(values, dtype="float64") if None not in values \
                else pd.Series(values, dtype="float64")
        elif spec.dtype == "integer":
            series = pd.Series(values, dtype="float64")
            data[spec.name] = series.astype("int64") if series.notna().all() \
                and (series % 1 == 0).all() else series
        elif spec.dtype == "category":
            data[spec.name] = pd.Categorical(values, categories=_categories(spec, values))
        elif spec.dtype == "boolean":
            data[spec.name] = pd.Series(values, dtype="boolean" if None in values else "bool")
        elif spec.dtype == "datetime":
            data[spec.name] = pd.to_datetime(pd.Series(values), utc=True, format="ISO8601")
        else:
            data[spec.name] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)


def _categories(spec: ColumnSpec, values: list[Any]) -> list[Any]:
    """The training categories, then any new ones in order of appearance."""
    known = list(spec.categories or ())
    seen = set(known)
    for value in values:
        if value is not None and value not in seen:
            seen.add(value)
            known.append(value)
    return known
