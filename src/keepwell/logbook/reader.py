"""Reading the logbook with DuckDB: sealed Parquet and unsealed segments as one table.

Every query runs on a snapshot taken under the logbook's shared lock (see
:mod:`keepwell.logbook.layout`), so a record is seen exactly once even while segments are
being sealed. Inside a query, three views exist:

``predictions``
    every prediction: request id, time, model, version, arm, latency, subject, outputs,
    features;
``feedback``
    every label received, including repeats and labels for unknown ids;
``predictions_with_labels``
    every prediction with its ``label``, ``label_ts`` (when the winning label was received)
    and ``label_count`` (labels received for it), null without a label: the same as
    ``predictions LEFT JOIN labels USING (request_id)``, and much faster once sealed (see
    :mod:`keepwell.logbook.label_columns`);
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
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keepwell.errors import ValidationError
from keepwell.logbook.erasure import Tombstones
from keepwell.logbook.label_columns import LabelColumn, read_columns
from keepwell.logbook.labels import LabelIndex, fresh_labels_sql, labels_sql, read_index
from keepwell.logbook.layout import LogLayout, Snapshot
from keepwell.logbook.segments import read_segment

__all__ = ["LogReader", "Window"]

# Without an index, every label is fresh: raw feedback grouped per request.
_RAW_LABELS = ("CREATE TEMP VIEW labels AS "
               "SELECT request_id, label, label_ts, label_count FROM _fresh_labels")


# What is known of the labels received since the label index was made.
_Fresh = Literal["none", "by_id", "unknown"]


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
                end: datetime | None = None, *, labelled: bool = True
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the ``predictions``, ``feedback`` and ``labels`` views, and
        ``predictions_with_labels`` unless ``labelled`` is False (it costs a look at the
        labels received since the last seal).

        ``model``, ``start`` and ``end`` prune which day partitions of predictions are read;
        feedback is read whole (labels may arrive any day).
        """
        con = duckdb.connect()
        try:
            with self.layout.lock(exclusive=False):
                tombstones = Tombstones(self.layout)
                first = start.astimezone(UTC).date() if start else None
                last = end.astimezone(UTC).date() if end else None
                predictions = self.layout.snapshot("predictions", model, first, last)
                unsealed = self._view(con, "predictions", predictions, tombstones)
                feedback = self.layout.snapshot("feedback", model)
                segments = self._view(con, "feedback", feedback, tombstones)
                indexes, fresh = self._labels_view(con, model, feedback, segments)
                if labelled:
                    self._labelled_view(con, predictions, unsealed, indexes, fresh)
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
                     feedback: Snapshot, segments: list[str]
                     ) -> tuple[dict[str, LabelIndex], _Fresh]:
        """The ``labels`` view: from the label indexes of the sealed feedback where they are
        valid, merged with the feedback they do not hold (see :mod:`keepwell.logbook.labels`);
        from the raw feedback alone where there is no index.

        Returns the valid indexes by model, and what is known of the feedback they do not
        hold (the ``_fresh_feedback`` view): that there is none, that it names its requests,
        or that labels given by subject make its requests unknown without a join.
        """
        indexes = {}
        for name in [model] if model is not None else self.layout.models("feedback"):
            parts = [p for p in feedback.parquet if p.parent.parent.name == name]
            found = read_index(self.layout, name, parts)
            if found is not None:
                indexes[name] = found
        if not indexes:
            con.execute(fresh_labels_sql("feedback", "feedback"))
            con.execute(_RAW_LABELS)
            return indexes, "unknown"
        covered = set().union(*(i.parts for i in indexes.values()))
        uncovered = [p for p in feedback.parquet if p not in covered]
        fresh = ([_read_parquet(uncovered)] if uncovered else []) + [
            f"SELECT * FROM {name}" for name in segments]  # noqa: S608
        index = _read_parquet([i.path for i in indexes.values()])
        if not fresh and not any(i.subject_rows for i in indexes.values()):
            # Every label is in the indexes (the usual case once sealed): they are the view.
            con.execute("CREATE TEMP VIEW labels AS SELECT request_id, label, label_ts, "  # noqa: S608
                        f"label_count FROM ({index})")
            return indexes, "none"
        # With nothing fresh, still a source of the feedback's columns and types.
        source = " UNION ALL BY NAME ".join(fresh) or "SELECT * FROM feedback WHERE false"
        con.execute(f"CREATE TEMP VIEW _fresh_feedback AS {source}")
        con.execute(f"CREATE TEMP VIEW _label_index AS {index}")
        known: _Fresh = "unknown"
        if any(i.subject_rows for i in indexes.values()):
            subjects: str | None = "feedback"
        elif _count(con, "SELECT count(*) FROM _fresh_feedback "
                         "WHERE request_id IS NULL AND subject IS NOT NULL"):
            subjects = "_fresh_feedback"
        else:
            subjects, known = None, "by_id"  # the fresh labels name their requests
        for statement in labels_sql("_label_index", "_fresh_feedback", subjects):
            con.execute(statement)
        return indexes, known

    def _labelled_view(self, con: duckdb.DuckDBPyConnection, predictions: Snapshot,
                       unsealed: list[str], indexes: dict[str, LabelIndex], fresh: _Fresh
                       ) -> None:
        """The ``predictions_with_labels`` view: every prediction with its ``label``,
        ``label_ts`` and ``label_count`` (null without a label), in the columns and types of
        ``predictions LEFT JOIN labels``.

        A sealed part is put beside its label column (see
        :mod:`keepwell.logbook.label_columns`) when it has a valid one and its request-id
        range takes in no request labelled since the index was made. That needs one model's
        labels only (a label logged under another model may name the request) and fresh
        labels that name their requests. The other parts and the unsealed segments are joined
        to ``labels`` by request id.
        """
        columns: dict[Path, LabelColumn] = {}
        fresh_ids = self._fresh_ids(con, fresh)
        if len(indexes) == 1 and fresh_ids is not None:
            ((name, index),) = indexes.items()
            parts = [p for p in predictions.parquet if p.parent.parent.name == name]
            columns = {part: column for part, column in
                       read_columns(self.layout, name, index, parts).items()
                       if not column.may_hold(fresh_ids)}
        beside = [p for p in predictions.parquet if p in columns]
        others = [p for p in predictions.parquet if p not in columns]
        rest = ([_read_parquet(others)] if others else []) + [
            f"SELECT * FROM {name}" for name in unsealed]  # noqa: S608
        pieces = []
        if beside:
            # Cast to the labels view's type: older label columns may hold an older one.
            label_type = _column_type(con, "labels", "label")
            pieces.append(
                f"SELECT * EXCLUDE (feedback_id, label), label::{label_type} AS label "  # noqa: S608
                f"FROM {_parquet(beside)} POSITIONAL JOIN "
                f"{_parquet([columns[p].path for p in beside])}")
        if rest or not beside:
            source = " UNION ALL BY NAME ".join(rest) or _EMPTY["predictions"]
            pieces.append(f"SELECT p.*, l.label, l.label_ts, l.label_count FROM ({source}) p "  # noqa: S608
                          "LEFT JOIN labels l USING (request_id)")
        order = ", ".join(_quoted(c) for c in _column_names(con, "predictions"))
        con.execute(f"CREATE TEMP VIEW predictions_with_labels AS SELECT {order}, "  # noqa: S608
                    "label, label_ts, label_count FROM ("
                    + " UNION ALL BY NAME ".join(pieces) + ")")

    @staticmethod
    def _fresh_ids(con: duckdb.DuckDBPyConnection, fresh: _Fresh) -> np.ndarray | None:
        """The request ids (text, sorted) labelled by the feedback no index holds; None when
        unknown."""
        if fresh == "none":
            return np.array([], dtype=object)
        if fresh == "unknown":
            return None
        return np.array([r[0] for r in con.execute(
            "SELECT DISTINCT request_id::VARCHAR FROM _fresh_feedback "
            "WHERE request_id IS NOT NULL ORDER BY 1").fetchall()], dtype=object)

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
            source = "predictions_with_labels p"
            selected = (selected if columns else "p.* EXCLUDE (label_count)") + (
                ", p.label, p.label_ts" if columns else "")
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
        elif not columns or ({"ts", "request_id"} <= set(columns)
                             and len(set(columns)) == len(columns)):
            # Scans return rows in file order, which is nearly always time order already:
            # checking that is much cheaper than having DuckDB sort every column.
            sql = f"SELECT {selected} FROM {source} WHERE {where}"  # noqa: S608
            with self.connect(model, start, end, labelled=with_labels) as con:
                return _in_time_order(_arrow(con, sql, params))
        else:
            sql = (f"SELECT {selected} FROM {source} WHERE {where} "  # noqa: S608
                   "ORDER BY p.ts, p.request_id")
        with self.connect(model, start, end, labelled=with_labels) as con:
            return _arrow(con, sql, params)

    def feedback(self, model: str | None = None) -> pa.Table:
        """Every label received (``model`` filter optional), in the order received."""
        sql = "SELECT * FROM feedback"
        params: list[Any] = []
        if model is not None:
            sql += " WHERE model = ?"
            params.append(model)
        with self.connect(model, labelled=False) as con:
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
        with self.connect(model, labelled=False) as con:
            return _arrow(con, sql + " ORDER BY f.received_ts", params)

    def query(self, sql: str, params: Sequence[Any] = (), *, model: str | None = None) -> pa.Table:
        """Any SQL over the ``predictions``, ``feedback``, ``labels`` and
        ``predictions_with_labels`` views."""
        with self.connect(model, labelled="predictions_with_labels" in sql.lower()) as con:
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


def _parquet(paths: Sequence[Path]) -> str:
    files = ", ".join(_quote(str(p)) for p in paths)
    return f"read_parquet([{files}], union_by_name = true)"


def _read_parquet(paths: Sequence[Path]) -> str:
    return f"SELECT * FROM {_parquet(paths)}"  # noqa: S608


def _in_time_order(table: pa.Table) -> pa.Table:
    """``table`` ordered by ``ts``, then ``request_id``; as it is when it already is."""
    if table.num_rows < 2:
        return table
    ts = table["ts"].combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    step = np.diff(ts)
    if (step >= 0).all():
        ties = np.flatnonzero(step == 0)
        if not len(ties):
            return table
        ids = table["request_id"].combine_chunks().cast(pa.string())
        earlier, later = ids.take(pa.array(ties)), ids.take(pa.array(ties + 1))
        if pc.all(pc.less(earlier, later)).as_py():
            return table
    order = pc.sort_indices(table, sort_keys=[("ts", "ascending"),
                                              ("request_id", "ascending")])
    return table.take(order)


def _column_names(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]


def _column_type(con: duckdb.DuckDBPyConnection, view: str, column: str) -> str:
    return next(str(row[1]) for row in con.execute(f"DESCRIBE {view}").fetchall()
                if row[0] == column)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    found = con.execute(sql).fetchone()
    return int(found[0]) if found else 0


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
