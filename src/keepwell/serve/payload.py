"""Request bodies: strict JSON, checked against the model's signature, into a DataFrame.

JSON is parsed with orjson, which refuses ``NaN``, ``Infinity`` and numbers out of the float
range. When it refuses, the body is parsed again by the standard library only to say *where*
(a JSON pointer per non-finite value) or, for broken JSON, to give a 400. A key given twice in
one object is refused too (orjson would keep the last silently): the keys orjson kept are
counted against the ``"…":`` patterns in the raw bytes, and only when those are more (a
duplicate, or ``":`` inside a string) is the body parsed again to name the duplicates.

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
import re
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from keepwell.errors import FieldError, MalformedBodyError, PayloadError
from keepwell.registry.signature import ColumnSpec, Signature

__all__ = ["model_inputs", "parse_json", "validate_inputs"]

# A key token: a quote, optional whitespace, a colon. Each key of a body matches once, and
# text inside a string can match too (an escaped quote before a colon), so the matches are
# never fewer than the keys.
_KEY_TOKEN = re.compile(rb'"[ \t\n\r]*:')


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


def _key_count(value: Any) -> int:
    """How many keys the objects in ``value`` hold, all levels together (no recursion: a
    body may nest as deep as orjson allows)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict):
            count += len(item)
        stack.extend(v for v in children if isinstance(v, dict | list))
    return count


class _Pairs(dict[str, Any]):
    """An object parsed by the standard library, remembering the keys it was given twice."""

    repeated: list[str]


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    obj = _Pairs(items)
    obj.repeated = [k for k, n in Counter(k for k, _ in items).items() if n > 1]
    return obj


def _repeated_pointers(value: Any) -> list[str]:
    """A JSON pointer to each repeated key of the :class:`_Pairs` objects in ``value``."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        pointer, item = stack.pop()
        if isinstance(item, _Pairs):
            found += [f"{pointer}/{_escape(k)}" for k in item.repeated]
            stack += [(f"{pointer}/{_escape(k)}", v) for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(f"{pointer}/{i}", v) for i, v in enumerate(item)]
    return sorted(found)


def _check_unique_keys(body: bytes, parsed: Any) -> None:
    if not isinstance(parsed, dict | list) \
            or len(_KEY_TOKEN.findall(body)) == _key_count(parsed):
        return  # every key token is a distinct key: no object repeats one
    try:
        pointers = _repeated_pointers(json.loads(body, object_pairs_hook=_pairs))
    except RecursionError:
        raise MalformedBodyError("the request body nests too deeply.") from None
    if pointers:
        raise PayloadError([FieldError(p, "this key is given more than once; give each key "
                                          "once") for p in pointers])


def parse_json(body: bytes) -> Any:
    """Parse a request body; non-finite numbers and repeated keys are a 422 naming each,
    broken JSON a 400.

    Examples
    --------
    >>> parse_json(b'{"inputs": [{"age": 31}]}')
    {'inputs': [{'age': 31}]}
    >>> parse_json(b'{"inputs": [{"age": 1, "age": 2}]}')
    Traceback (most recent call last):
    keepwell.errors.PayloadError: this key is given more than once; give each key once
    """
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        _check_unique_keys(body, parsed)
        return parsed
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


def model_inputs(columns: dict[str, list[Any]], signature: Signature
                 ) -> tuple[pd.DataFrame, pa.Table]:
    """The model's input frame (signature order, training dtypes) and the same values as an
    Arrow table for the logbook, typed as ``pa.Table.from_pandas`` of the frame would be.

    Numeric columns are built once in numpy and shared by both; an all-numeric frame is one
    float block (no consolidation copy). The frame's column labels are a plain object index:
    scikit-learn reads the labels as a numpy array on every call, which is a conversion for
    pandas' Arrow-backed string index.

    Examples
    --------
    >>> sig = Signature((ColumnSpec("age", "float", True), ColumnSpec("n", "integer", False)),
    ...                 "binary")
    >>> frame, table = model_inputs({"age": [31.5, None], "n": [1, 2]}, sig)
    >>> [str(t) for t in frame.dtypes], table.column("age").to_pylist()
    (['float64', 'int64'], [31.5, None])
    """
    names = signature.feature_names
    labels = pd.Index(names, dtype=object)
    numeric: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.dtype in ("float", "integer"):
            values = np.array(columns[spec.name], dtype=float)  # None becomes NaN
            if spec.dtype == "integer" and not np.isnan(values).any() \
                    and (values % 1 == 0).all():
                values = values.astype(np.int64)
            numeric[spec.name] = values
    if len(numeric) == len(names) and all(v.dtype.kind == "f" for v in numeric.values()):
        block = np.array([numeric[n] for n in names], dtype=float).reshape(len(names), -1)
        frame = pd.DataFrame(block.T, columns=labels, copy=False)
        arrays = [pa.array(row, from_pandas=True) for row in block]
        return frame, pa.Table.from_arrays(arrays, names=names)
    data = {n: numeric[n] if n in numeric else _series(spec, columns[n])
            for n, spec in zip(names, signature.inputs, strict=True)}
    frame = pd.DataFrame(data, columns=labels)
    arrays = [pa.array(data[n], from_pandas=True) for n in names]
    return frame, pa.Table.from_arrays(arrays, names=names)


def _series(spec: ColumnSpec, values: list[Any]) -> Any:
    """A non-numeric column as the model saw its kind in training."""
    if spec.dtype == "category":
        return pd.Categorical(values, categories=_categories(spec, values))
    if spec.dtype == "boolean":
        return pd.Series(values, dtype="boolean" if None in values else "bool")
    if spec.dtype == "datetime":
        return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601")
    return pd.Series(values, dtype="object")


def _categories(spec: ColumnSpec, values: list[Any]) -> list[Any]:
    """The training categories, then any new ones in order of appearance."""
    known = list(spec.categories or ())
    seen = set(known)
    for value in values:
        if value is not None and value not in seen:
            seen.add(value)
            known.append(value)
    return known
