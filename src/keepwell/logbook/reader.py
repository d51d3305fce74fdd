"""Reading the logbook with DuckDB: sealed Parquet and unsealed segments as one table.

Every query runs on a snapshot taken under the logbook's shared lock (see
:mod:`keepwell.logbook.layout`), so a record is seen exactly once even while segments are
being sealed. Inside a query, three views exist:

``predictions``
    every prediction: request id, time, model, version, arm, latency, subject, outputs,
    features;
``feedback``
    every label received, including repeats and labels for unknown ids;
``labels``
    one label per prediction — the *latest received* wins when a label comes twice (the one
    with the greatest ``feedback_id``: UUIDv7s made in order of receipt; two labels received
    by different processes within the same millisecond are ordered arbitrarily). Labels given
    by subject and time go to that subject's latest prediction at or before the time.

:meth:`LogReader.query` runs any SQL over them; the other methods are the common questions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from keepwell.errors import ValidationError
from keepwell.logbook.erasure import Tombstones
from keepwell.logbook.labels import labels_sql, read_index
from keepwell.logbook.layout import LogLayout, Snapshot
from keepwell.logbook.segments import read_segment

__all__ = ["LogReader", "Window"]

_LABELS_SQL = """
CREATE TEMP VIEW labels AS
WITH direct AS (
    SELECT request_id, label, received_ts, feedback_id FROM feedback
    WHERE request_id IS NOT NULL
), by_subject AS (
    SELECT p.request_id, f.label, f.received_ts, f.feedback_id
    FROM (SELECT * FROM feedback WHERE request_id IS NULL AND subject IS NOT NULL) f
    ASOF JOIN (SELECT request_id, model, subject, ts FROM predictions
               WHERE subject IS NOT NULL) p
    ON f.model = p.model AND f.subject = p.subject AND f.event_ts >= p.ts
)
SELECT request_id,
       arg_max(label, feedback_id) AS label,
       max(received_ts) AS label_ts,
       count(*) AS label_count
FROM (SELECT * FROM direct UNION ALL SELECT * FROM by_subject)
GROUP BY request_id
"""


@dataclass(frozen=True)
class Window:
    """A slice of the log: ``[start, end)`` in time, with its rows."""

    start: datetime
    end: datetime
    table: pa.Table


# SQL here is built only from constant fragments, quoted file paths and checked column names;
# every value is passed as a parameter (hence the S608 waivers below).
def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


class LogReader:
    """Queries over one logbook folder."""

    def __init__(self, layout: LogLayout) -> None:
        self.layout = layout

    @contextlib.contextmanager
    def connect(self, model: str | None = None, start: datetime | None = None,
                end: datetime | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the ``predictions``, ``feedback`` and ``labels`` views.

        ``model``, ``start`` and ``end`` prune which day partitions of predictions are read;
        feedback is read whole (labels may arrive any day).
        """
        con = duckdb.connect()
        try:
            with self.layout.lock(exclusive=False):
                tombstones = Tombstones(self.layout)
                first = start.astimezone(UTC).date() if start else None
                last = end.astimezone(UTC).date() if end else None
                self._view(con, "predictions", self.layout.snapshot(
                    "predictions", model, first, last), tombstones)
                feedback = self.layout.snapshot("feedback", model)
                segments = self._view(con, "feedback", feedback, tombstones)
                self._labels_view(con, model, feedback, segments)
                yield con
        finally:
            con.close()

    def _view(self, con: duckdb.DuckDBPyConnection, kind: str, snapshot: Snapshot,
              tombstones: Tombstones) -> list[str]:
        """Create the view ``kind`` over the snapshot's files; the names of the views of its
        unsealed segments."""
        parts = [_read_parquet(snapshot.parquet)] if snapshot.parquet else []
        segments = []
        for i, path in enumerate(snapshot.segments):
            batches = read_segment(path).batches
            if batches:
                # One view per segment: DuckDB's UNION BY NAME finds a common type when two
                # segments disagree (an int label here, a string one there).
                table = tombstones.drop_erased(kind, pa.Table.from_batches(batches))
                con.register(f"_unsealed_{kind}_{i}", table)
                segments.append(f"_unsealed_{kind}_{i}")
        parts += [f"SELECT * FROM {name}" for name in segments]  # noqa: S608
        if not parts:
            parts.append(_EMPTY[kind])
        con.execute(f"CREATE TEMP VIEW {kind} AS " + " UNION ALL BY NAME ".join(parts))
        return segments

    def _labels_view(self, con: duckdb.DuckDBPyConnection, model: str | None,
                     feedback: Snapshot, segments: list[str]) -> None:
        """The ``labels`` view: from the label indexes of the sealed feedback where they are
        valid, merged with the feedback they do not hold (see :mod:`keepwell.logbook.labels`);
        from the raw feedback alone where there is no index."""
        indexes = []
        for name in [model] if model is not None else self.layout.models("feedback"):
            parts = [p for p in feedback.parquet if p.parent.parent.name == name]
            found = read_index(self.layout, name, parts)
            if found is not None:
                indexes.append(found)
        if not indexes:
            con.execute(_LABELS_SQL)
            return
        covered = set().union(*(i.parts for i in indexes))
        uncovered = [p for p in feedback.parquet if p not in covered]
        fresh = ([_read_parquet(uncovered)] if uncovered else []) + [
            f"SELECT * FROM {name}" for name in segments]  # noqa: S608
        index = _read_parquet([i.path for i in indexes])
        if not fresh and not any(i.subject_rows for i in indexes):
            # Every label is in the indexes (the usual case once sealed): they are the view.
            con.execute("CREATE TEMP VIEW labels AS SELECT request_id, label, label_ts, "  # noqa: S608
                        f"label_count FROM ({index})")
            return
        # With nothing fresh, still a source of the feedback's columns and types.
        source = " UNION ALL BY NAME ".join(fresh) or "SELECT * FROM feedback WHERE false"
        con.execute(f"CREATE TEMP VIEW _fresh_feedback AS {source}")
        subjects = "feedback" if any(i.subject_rows for i in indexes) else "_fresh_feedback"
        con.execute(f"CREATE TEMP VIEW _label_index AS {index}")
        con.execute(labels_sql("_label_index", "_fresh_feedback", subjects))

    # -- common questions -----------------------------------------------------------------

    def predictions(self, model: str, *, start: datetime | None = None,
                    end: datetime | None = None, last: int | None = None,
                    version: int | None = None, arm: str | None = None,
                    columns: Sequence[str] | None = None, with_labels: bool = False) -> pa.Table:
        """Predictions of ``model`` in ``[start, end)``, or the ``last`` N, oldest first."""
        where, params = self._filters(model, start, end, version, arm)
        selected = "*" if not columns else ", ".join(f'p."{c}"' for c in
                                                      _checked_columns(columns))
        if with_labels:
            source = ("predictions p LEFT JOIN labels l USING (request_id)")
            selected = (selected if columns else "p.*") + ", l.label, l.label_ts"
        else:
            source = "predictions p"
        if last is not None:
            if last < 0:
                raise ValidationError("last must be a non-negative number of records.")
            # The newest N by time, then put back in time order (ordering keys kept aside).
            inner = (f"SELECT {selected}, p.ts AS _ts, p.request_id AS _rid "  # noqa: S608
                     f"FROM {source} WHERE {where} "
                     f"ORDER BY p.ts DESC, p.request_id DESC LIMIT {int(last)}")
            sql = f"SELECT * EXCLUDE (_ts, _rid) FROM ({inner}) ORDER BY _ts, _rid"  # noqa: S608
        else:
            sql = (f"SELECT {selected} FROM {source} WHERE {where} "  # noqa: S608
                   "ORDER BY p.ts, p.request_id")
        with self.connect(model, start, end) as con:
            return _arrow(con, sql, params)

    def feedback(self, model: str | None = None) -> pa.Table:
        """Every label received (``model`` filter optional), in the order received."""
        sql = "SELECT * FROM feedback"
        params: list[Any] = []
        if model is not None:
            sql += " WHERE model = ?"
            params.append(model)
        with self.connect(model) as con:
            return _arrow(con, sql + " ORDER BY received_ts, feedback_id", params)

    def unmatched_feedback(self, model: str | None = None) -> pa.Table:
        """Labels that match no logged prediction (an unknown id, or a subject never seen)."""
        sql = """
            SELECT f.* FROM feedback f
            WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.request_id = f.request_id)
              AND (f.request_id IS NOT NULL OR NOT EXISTS (
                   SELECT 1 FROM predictions p WHERE p.model = f.model
                   AND p.subject = f.subject AND p.ts <= f.event_ts))
        """
        params: list[Any] = []
        if model is not None:
            sql += " AND f.model = ?"
            params.append(model)
        with self.connect(model) as con:
            return _arrow(con, sql + " ORDER BY f.received_ts", params)

    def query(self, sql: str, params: Sequence[Any] = (), *, model: str | None = None) -> pa.Table:
        """Any SQL over the ``predictions``, ``feedback`` and ``labels`` views."""
        with self.connect(model) as con:
            return _arrow(con, sql, list(params))

    def windows(self, model: str, *, every: timedelta | None = None, size: int | None = None,
                start: datetime | None = None, end: datetime | None = None,
                with_labels: bool = False) -> Iterator[Window]:
        """Consecutive windows of predictions: by time (``every``) or by count (``size``)."""
        if (every is None) == (size is None):
            raise ValidationError("give exactly one of every= (a timedelta) or size= (a count).")
        table = self.predictions(model, start=start, end=end, with_labels=with_labels)
        n = table.num_rows
        if n == 0:
            return
        times = table["ts"].to_pylist()
        if size is not None:
            if size < 1:
                raise ValidationError("size must be at least 1.")
            for lo in range(0, n, size):
                # [start, end): the end is just after the window's last record.
                end_ts = times[min(lo + size, n) - 1] + timedelta(microseconds=1)
                yield Window(times[lo], end_ts, table.slice(lo, size))
            return
        assert every is not None
        if every <= timedelta(0):
            raise ValidationError("every must be a positive duration.")
        # Rows are sorted by time: each window's end is a binary search, not a scan.
        stamps = table["ts"].to_numpy()
        origin = start or times[0]
        step = np.timedelta64(int(every / timedelta(microseconds=1)), "us")
        first = np.datetime64(origin.astimezone(UTC).replace(tzinfo=None), "us")
        count = int((stamps[-1] - first) // step) + 1
        bounds = np.searchsorted(stamps, first + step * np.arange(count + 1), side="left")
        for k in range(count):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            if hi > lo:
                yield Window(origin + every * k, origin + every * (k + 1),
                             table.slice(lo, hi - lo))

    @staticmethod
    def _filters(model: str, start: datetime | None, end: datetime | None, version: int | None,
                 arm: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = ["p.model = ?"]
        params: list[Any] = [model]
        for clause, value in (("p.ts >= ?", start), ("p.ts < ?", end),
                              ("p.version = ?", version), ("p.arm = ?", arm)):
            if value is not None:
                if isinstance(value, datetime) and value.tzinfo is None:
                    raise ValidationError("start and end must be timezone-aware datetimes.")
                clauses.append(clause)
                params.append(value)
        return " AND ".join(clauses), params


def _read_parquet(paths: Sequence[Path]) -> str:
    files = ", ".join(_quote(str(p)) for p in paths)
    return f"SELECT * FROM read_parquet([{files}], union_by_name = true)"  # noqa: S608


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> pa.Table:
    """The query's result as an Arrow table, without DB-API's extra copy."""
    return con.sql(sql, params=list(params)).to_arrow_table()


def _checked_columns(columns: Sequence[str]) -> list[str]:
    for column in columns:
        if '"' in column or not column.isprintable():
            raise ValidationError(f"column name {column!r} is not valid.")
    return list(columns)


_EMPTY = {
    "predictions": "SELECT NULL::UUID AS request_id, NULL::TIMESTAMPTZ AS ts, "
                   "NULL::VARCHAR AS model, NULL::INTEGER AS version, NULL::VARCHAR AS arm, "
                   "NULL::DOUBLE AS latency_ms, NULL::VARCHAR AS subject, "
                   "NULL::VARCHAR AS prediction WHERE false",
    "feedback": "SELECT NULL::UUID AS feedback_id, NULL::TIMESTAMPTZ AS received_ts, "
                "NULL::VARCHAR AS model, NULL::UUID AS request_id, NULL::VARCHAR AS subject, "
                "NULL::TIMESTAMPTZ AS event_ts, NULL::VARCHAR AS label WHERE false",
}
