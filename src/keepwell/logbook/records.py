"""The logbook's record layouts, and how inputs become Arrow record batches.

A prediction row holds, in this order: ``request_id`` (UUIDv7), ``ts`` (UTC, microseconds),
``model``, ``version``, ``arm``, ``latency_ms``, ``subject``, then the model's outputs
(``prediction``, and ``score`` or ``proba_<class>``), then one column per feature, named as
the feature. A feedback row holds ``feedback_id``, ``received_ts``, ``model``, ``request_id``,
``subject``, ``event_ts`` and ``label``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keepwell.errors import ValidationError
from keepwell.logbook.ids import id_array
from keepwell.registry.signature import RESERVED_COLUMNS

__all__ = ["Feedback", "Prediction", "feedback_batch", "prediction_batch", "to_table",
           "uuid_array"]

TIMESTAMP = pa.timestamp("us", tz="UTC")
META_COLUMNS = ("request_id", "ts", "model", "version", "arm", "latency_ms", "subject")
ARMS = ("champion", "challenger", "shadow", "batch")


@dataclass(frozen=True)
class Prediction:
    """One logged prediction (the single-record form of :meth:`Logbook.append`)."""

    model: str
    version: int
    features: Mapping[str, Any]
    prediction: Any
    scores: Mapping[str, float] = field(default_factory=dict)
    arm: str = "champion"
    latency_ms: float | None = None
    subject: str | None = None
    request_id: str | None = None
    ts: datetime | None = None


@dataclass(frozen=True)
class Feedback:
    """One label: for a request id, or for a subject at a time."""

    model: str
    label: Any
    request_id: str | None = None
    subject: str | None = None
    event_ts: datetime | None = None


def to_table(data: pd.DataFrame | pa.Table | Mapping[str, Any], what: str) -> pa.Table:
    """Features or outputs as an Arrow table (pandas index dropped)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    raise ValidationError(f"{what} must be a pandas DataFrame, an Arrow table or a mapping of "
                          f"columns, not {type(data).__name__}.")


def uuid_array(values: Sequence[str | None] | pa.Array | None, n: int, what: str, *,
               nullable: bool = False) -> pa.Array:
    """Request ids as an Arrow ``uuid`` array: given as text (validated), or newly made.

    A prediction needs every id; a feedback row may leave its id out (``nullable``) when it
    names a subject instead.
    """
    if values is None:
        return id_array(n)
    if len(values) != n:
        raise ValidationError(f"{what} has {len(values)} entries for {n} rows.")
    if isinstance(values, pa.Array) and isinstance(values.type, pa.UuidType):
        if values.null_count and not nullable:
            raise ValidationError(f"{what} holds a missing id; give one per row.")
        return values
    raw = bytearray()
    valid = np.ones(n, dtype=bool)
    for i, value in enumerate(values.to_pylist() if isinstance(values, pa.Array) else values):
        if value is None:
            if not nullable:
                raise ValidationError(f"{what}[{i}] is missing; give one id per row.")
            valid[i] = False
            raw += bytes(16)
            continue
        try:
            raw += uuid.UUID(str(value)).bytes
        except ValueError:
            raise ValidationError(f"{what}[{i}] = {str(value)[:40]!r} is not a UUID; use the "
                                  "request_id returned with the prediction.") from None
    validity = None if valid.all() else pa.array(valid).buffers()[1]
    storage = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n,
                                                   [validity, pa.py_buffer(bytes(raw))])
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _constant(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` n times, built from buffers (fast for big batches)."""
    encoded = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int32) * len(encoded)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()),
                                       pa.py_buffer(encoded * n))


def _timestamps(ts: Any, n: int, what: str) -> pa.Array:
    if ts is None:
        now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
        return pa.array(np.full(n, now), type=TIMESTAMP)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValidationError(f"{what} must be timezone-aware (UTC recommended).")
        stamp = np.datetime64(ts.astimezone(UTC).replace(tzinfo=None), "us")
        return pa.array(np.full(n, stamp), type=TIMESTAMP)
    if isinstance(ts, list | tuple) and all(isinstance(t, datetime) for t in ts):
        # The single-record path: no pandas round trip for a handful of datetimes.
        if len(ts) != n:
            raise ValidationError(f"{what} has {len(ts)} entries for {n} rows.")
        if any(t.tzinfo is None for t in ts):
            raise ValidationError(f"{what} must be timezone-aware (UTC recommended); naive "
                                  "times are ambiguous.")
        return pa.array([t.astimezone(UTC) for t in ts], type=TIMESTAMP)
    try:
        series = pd.to_datetime(pd.Series(ts), format="ISO8601")
    except (ValueError, TypeError):
        raise ValidationError(f"{what} must hold timezone-aware timestamps.") from None
    if len(series) != n:
        raise ValidationError(f"{what} has {len(series)} entries for {n} rows.")
    if n and series.dt.tz is None:
        raise ValidationError(f"{what} must be timezone-aware (UTC recommended); naive times "
                              "are ambiguous.")
    return pa.array(series.dt.tz_convert("UTC") if n else series, type=TIMESTAMP)


def _optional(values: Any, n: int, type_: pa.DataType, what: str) -> pa.Array:
    if values is None:
        return pa.nulls(n, type=type_)
    if np.isscalar(values):
        values = [values] * n
    array = pa.array(values, type=type_, from_pandas=True)
    if len(array) != n:
        raise ValidationError(f"{what} has {len(array)} entries for {n} rows.")
    return array


def _check_features(features: pa.Table) -> None:
    for name in features.column_names:
        if name in RESERVED_COLUMNS or name.startswith("proba_"):
            raise ValidationError(f"feature {name!r} has the name of a logbook column; rename it.")


def prediction_batch(
    model: str,
    version: int,
    features: pa.Table,
    outputs: pa.Table,
    *,
    arm: str = "champion",
    ts: Any = None,
    latency_ms: Any = None,
    subjects: Any = None,
    request_ids: Any = None,
) -> pa.RecordBatch:
    """One record batch of predictions in the logbook's layout."""
    n = features.num_rows
    if outputs.num_rows != n:
        raise ValidationError(f"outputs have {outputs.num_rows} rows and features {n}.")
    if "prediction" not in outputs.column_names:
        raise ValidationError("outputs need a 'prediction' column.")
    unknown = [c for c in outputs.column_names if c not in ("prediction", "score")
               and not c.startswith("proba_")]
    if unknown:
        raise ValidationError(f"output column {unknown[0]!r} is not one of prediction, score, "
                              "proba_<class>.")
    if arm not in ARMS:
        raise ValidationError(f"arm must be one of {', '.join(ARMS)}, not {arm!r}.")
    _check_features(features)
    columns = [
        uuid_array(request_ids, n, "request_ids"),
        _timestamps(ts, n, "ts"),
        _constant(model, n),
        pa.array(np.full(n, version, dtype=np.int32)),
        _constant(arm, n),
        _optional(latency_ms, n, pa.float64(), "latency_ms"),
        _optional(subjects, n, pa.string(), "subjects"),
    ]
    names = [*META_COLUMNS, *outputs.column_names, *features.column_names]
    table = pa.Table.from_arrays([*columns, *outputs.columns, *features.columns], names=names)
    return _one_batch(table)


def feedback_batch(
    model: str,
    labels: Any,
    *,
    request_ids: Any = None,
    subjects: Any = None,
    event_ts: Any = None,
) -> pa.RecordBatch:
    """One record batch of feedback: labels by request id, or by subject and event time."""
    try:
        label_array = labels if isinstance(labels, pa.Array) else pa.array(labels,
                                                                           from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise ValidationError("labels must all be of one type (numbers, strings or "
                              "booleans).") from None
    n = len(label_array)
    if request_ids is None and subjects is None:
        raise ValidationError("feedback needs request_ids, or subjects with event_ts.")
    if subjects is not None and request_ids is None and event_ts is None:
        raise ValidationError("feedback by subject needs event_ts: the time the label is about.")
    columns = [
        id_array(n),
        _timestamps(None, n, "received_ts"),
        _constant(model, n),
        uuid_array(request_ids, n, "request_ids", nullable=True) if request_ids is not None
        else pa.nulls(n, type=pa.uuid()),
        _optional(subjects, n, pa.string(), "subjects"),
        _timestamps(event_ts, n, "event_ts") if event_ts is not None
        else pa.nulls(n, type=TIMESTAMP),
        label_array,
    ]
    names = ["feedback_id", "received_ts", "model", "request_id", "subject", "event_ts", "label"]
    return _one_batch(pa.Table.from_arrays(columns, names=names))


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """The table as one batch, dictionary columns (pandas categories) decoded: a segment frame
    holds plain values only, and Parquet dictionary-encodes them again when sealed."""
    for i, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(i, table.field(i).name,
                                     column.cast(column.type.value_type))
    if any(column.num_chunks != 1 for column in table.columns):
        table = table.combine_chunks()
    batches = table.to_batches()
    if batches:
        return batches[0]
    return pa.RecordBatch.from_pylist([], schema=table.schema)
