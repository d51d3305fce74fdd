"""Single records to one record batch without type inference: the fast path of
:meth:`Logbook.append <keepwell.logbook.logbook.Logbook.append>`.

Building a batch the general way (:func:`~keepwell.logbook.records.prediction_batch`) infers
every column's type and assembles about seventy Arrow arrays one by one: some 700 µs whatever
the number of rows, which is what a single-record append paid. Records that repeat the
feature and score names of an earlier batch need none of that. A :class:`RowLayout` is taken
from the schema of that earlier batch; the records become one tuple each, and one
``pyarrow.array`` call over the tuples, typed as a struct, makes every column at once.

Values are converted only where no information can be lost, which the Python type of each value
decides before anything is built: a float column takes floats and integers (pyarrow refuses an
integer that a double cannot hold exactly), an integer column only integers (pyarrow would
truncate 1.5 to 1), a text column only ``str``, a boolean one only ``bool`` (numpy scalars of
these kinds too), and every column takes ``None``; columns of other types take nothing. A
record with any other value goes the general way, which infers the types anew (and the new
schema then starts a new segment, as it always did).

Examples
--------
>>> from datetime import UTC, datetime
>>> from keepwell.logbook.records import Prediction, prediction_batch
>>> import pyarrow as pa
>>> first = prediction_batch("churn", 1, pa.table({"age": [31.0]}), pa.table({"prediction": [1]}))
>>> layout = RowLayout.of(first.schema)
>>> record = Prediction("churn", 1, {"age": 45}, prediction=0,
...                     ts=datetime(2025, 6, 1, tzinfo=UTC))
>>> batch, ids = layout.batch([record], "churn", 1, "champion")
>>> batch.schema.equals(first.schema), batch.column("age").to_pylist()
(True, [45.0])
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from keepwell.logbook.ids import id_bytes, id_text
from keepwell.logbook.records import META_COLUMNS, Prediction

__all__ = ["RowLayout"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NONE = type(None)
_MAX_SIGNATURES = 64


_INTEGERS = frozenset({int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                       np.uint32, np.uint64})
_FLOATS = frozenset({float, np.float16, np.float32, np.float64})


def _accepted(type_: pa.DataType) -> frozenset[type]:
    """The Python (and numpy scalar) types a column of ``type_`` takes without loss; none for
    a column of any other type, whose records all go the general way. pyarrow refuses, and
    so sends the record the general way, an integer too large for the column, or one that a
    double cannot hold exactly."""
    if pa.types.is_floating(type_):
        return _FLOATS | _INTEGERS | {_NONE}
    if pa.types.is_integer(type_):
        return _INTEGERS | {_NONE}
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return frozenset({str, np.str_, _NONE})
    if pa.types.is_boolean(type_):
        return frozenset({bool, np.bool_, _NONE})
    if pa.types.is_null(type_):
        return frozenset({_NONE})
    return frozenset()


class RowLayout:
    """The schema of a prediction batch, and how to fill it from single records.

    Use :meth:`of` with the schema of a batch built the general way; :meth:`batch` then builds
    batches of the very same schema from records with the same feature and score names.
    """

    def __init__(self, schema: pa.Schema, output_names: tuple[str, ...],
                 feature_names: tuple[str, ...]) -> None:
        self.schema = schema
        self.output_names = output_names
        self.feature_names = feature_names
        self.score_names = output_names[1:]
        # Rows are converted to the storage types (pyarrow converts no Python value to an
        # extension type such as ``uuid``), and the result is then viewed as the schema's types.
        self._storage_type = pa.struct([pa.field(f.name, f.type.storage_type if isinstance(
            f.type, pa.BaseExtensionType) else f.type) for f in schema])
        self._row_type = pa.struct(list(schema))
        self._accepted = [_accepted(f.type) for f in schema][len(META_COLUMNS):]
        self._signatures: set[tuple[type, ...]] = set()

    @classmethod
    def of(cls, schema: pa.Schema) -> RowLayout:
        """The layout of a prediction batch's schema (meta columns, outputs, features)."""
        names = schema.names[len(META_COLUMNS):]
        outputs = tuple(n for n in names if n in ("prediction", "score")
                        or n.startswith("proba_"))
        return cls(schema, outputs, tuple(names[len(outputs):]))

    def _takes(self, values: tuple[Any, ...]) -> bool:
        """Whether every value's Python type fits its column (remembered per signature)."""
        signature = tuple(map(type, values))
        if signature in self._signatures:
            return True
        if len(signature) != len(self._accepted) or not all(
                kind in ok for kind, ok in zip(signature, self._accepted, strict=True)):
            return False
        if len(self._signatures) >= _MAX_SIGNATURES:
            self._signatures.clear()
        self._signatures.add(signature)
        return True

    def batch(self, records: Sequence[Prediction], model: str, version: int, arm: str
              ) -> tuple[pa.RecordBatch, list[str]] | None:
        """The records as one batch of this layout and their request ids; None when a record
        does not fit (other names, a value of another type, a ``ts`` that is not an aware
        datetime, a ``request_id`` that is no UUID): build it the general way, which also
        names what is wrong.
        """
        rows: list[tuple[Any, ...]] = []
        fresh = iter(id_bytes(sum(r.request_id is None for r in records)))
        now: int | None = None
        ids: list[bytes] = []
        for record in records:
            if (tuple(record.features) != self.feature_names
                    or tuple(record.scores) != self.score_names):
                return None
            values = (record.prediction, *record.scores.values(), *record.features.values())
            if not self._takes(values):
                return None
            raw = next(fresh) if record.request_id is None else _parse_id(record.request_id)
            if record.ts is None:
                if now is None:
                    now = (datetime.now(UTC) - _EPOCH) // _MICROSECOND
                stamp: int | None = now
            else:
                stamp = _micros(record.ts)
            if raw is None or stamp is None:
                return None
            ids.append(raw)
            rows.append((raw, stamp, model, version, arm, record.latency_ms, record.subject,
                         *values))
        try:
            struct = pa.array(rows, type=self._storage_type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            return None
        batch = pa.RecordBatch.from_struct_array(struct.view(self._row_type))
        return batch, [id_text(raw) for raw in ids]


def _parse_id(value: Any) -> bytes | None:
    """A request id's 16 bytes; None when it is no UUID (the general way names the error)."""
    try:
        return uuid.UUID(str(value)).bytes
    except ValueError:
        return None


def _micros(ts: Any) -> int | None:
    """Microseconds since the epoch of an aware datetime; None for anything else (the general
    way parses text and refuses naive times)."""
    if not isinstance(ts, datetime) or ts.utcoffset() is None:
        return None
    return int((ts - _EPOCH) // _MICROSECOND)
