"""The logbook: every prediction and every late label, durable and queryable.

>>> import tempfile, pandas as pd
>>> book = Logbook(tempfile.mkdtemp())
>>> ids = book.append_frame("churn", 1, pd.DataFrame({"age": [31.0, 45.0]}),
...                         pd.DataFrame({"prediction": [0, 1], "score": [0.2, 0.9]}))
>>> book.add_feedback("churn", [1], request_ids=[ids[1]]).accepted
1
>>> book.predictions("churn", with_labels=True).column("label").to_pylist()
[None, 1]
>>> book.close()
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from keepwell.errors import LogbookUnavailableError, ValidationError
from keepwell.logbook.erasure import ErasureReport, Tombstones, erase_subject
from keepwell.logbook.ids import id_strings, new_id
from keepwell.logbook.label_columns import build_columns
from keepwell.logbook.labels import build_index, drop_index
from keepwell.logbook.layout import LogLayout, sync_dir
from keepwell.logbook.reader import LogReader
from keepwell.logbook.records import (
    ARMS,
    Feedback,
    Prediction,
    feedback_batch,
    prediction_batch,
    to_table,
)
from keepwell.logbook.rows import RowLayout
from keepwell.logbook.sealer import SealReport, seal
from keepwell.logbook.writer import Durability, LogWriter, Written
from keepwell.registry.names import check_model_name

__all__ = ["FeedbackResult", "Logbook", "RetentionReport"]

_MAX_LAYOUTS = 64


class _Slot:
    """Records one caller handed to :meth:`Logbook.append`, and what became of them.

    A slot is woken when it is done, or when its caller is handed the turn to write (and then
    once more when that write is done). A bare lock, held from the start, is the cheapest way
    (an ``Event`` costs a condition and its own lock): each wake releases it, each wait
    acquires it, and a slot is never woken twice without a wait in between.
    """

    __slots__ = ("_wake", "done", "error", "ids", "records")

    def __init__(self, records: list[Prediction]) -> None:
        self.records = records
        self.ids: list[str] = []
        self.error: Exception | None = None
        self.done = False  # written and synced, or failed
        self._wake = threading.Lock()
        self._wake.acquire()

    def wait(self) -> None:
        self._wake.acquire()

    def wake(self) -> None:
        self._wake.release()

    def result(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return self.ids


def _schema_of(group: Sequence[Prediction], names: list[str]) -> pa.Schema:
    """The union of the records' features (some records lack some), each typed by its
    first non-missing value."""
    fields = []
    for name in names:
        sample = next((r.features[name] for r in group
                       if name in r.features and r.features[name] is not None), None)
        fields.append(pa.field(name, pa.scalar(sample).type if sample is not None
                               else pa.null()))
    return pa.schema(fields)


@dataclass(frozen=True)
class FeedbackResult:
    """What :meth:`Logbook.add_feedback` kept: every label, and how many match no prediction
    yet (kept all the same, and listed by :meth:`Logbook.unmatched_feedback`)."""

    accepted: int
    unmatched: int


@dataclass(frozen=True)
class RetentionReport:
    files_removed: int
    cutoff: datetime


class Logbook(LogReader):
    """Append predictions and feedback; read, seal, expire and erase them.

    Parameters
    ----------
    root:
        The logbook folder (``log_root`` in the settings).
    durability:
        ``"sync"`` (default): an append returns once its records are on disk. ``"batch"``: it
        returns once they are written, and a background thread syncs every
        ``flush_interval_ms``; a machine crash may lose that last interval, a process crash
        loses nothing. See :mod:`keepwell.logbook.writer`.
    """

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability = "sync",
                 flush_interval_ms: float = 50.0, max_segment_bytes: int = 64 << 20,
                 max_segment_age_s: float = 60.0, **writer_options: Any) -> None:
        super().__init__(LogLayout(root))
        self.root = self.layout.root
        self._writer_options = dict(durability=durability, flush_interval_ms=flush_interval_ms,
                                    max_segment_bytes=max_segment_bytes,
                                    max_segment_age_s=max_segment_age_s, **writer_options)
        self._writer: LogWriter | None = None
        self._pending: list[_Slot] = []
        self._turn = threading.Lock()  # guards _pending and _writing
        self._writing = False
        # Layouts of earlier single-record batches by (model, feature names, score names).
        self._layouts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], RowLayout] = {}

    @property
    def writer(self) -> LogWriter:
        """This process's writer, created on the first append."""
        if self._writer is None:
            self._writer = LogWriter(self.root, **self._writer_options)
        return self._writer

    @property
    def ready(self) -> bool:
        """False once the writer has stopped after a failed sync."""
        return self._writer is None or self._writer.ready

    # -- predictions ----------------------------------------------------------------------

    def append_frame(
        self,
        model: str,
        version: int,
        features: pd.DataFrame | pa.Table | Mapping[str, Any],
        outputs: pd.DataFrame | pa.Table | Mapping[str, Any],
        *,
        arm: str = "champion",
        ts: Any = None,
        latency_ms: Any = None,
        subjects: Any = None,
        request_ids: Any = None,
    ) -> list[str]:
        """Log a batch of predictions of one model version; returns their request ids.

        ``outputs`` has a ``prediction`` column and, for classifiers, ``score`` (binary) or
        ``proba_<class>`` columns. ``ts`` defaults to now; ``request_ids`` to new UUIDv7s.
        """
        batch = self._prediction_batch(model, version, features, outputs, arm=arm, ts=ts,
                                       latency_ms=latency_ms, subjects=subjects,
                                       request_ids=request_ids)
        self.writer.append("predictions", model, batch)
        ids: list[str] = id_strings(batch.column(0)).to_pylist()
        return ids

    def append_arrow(self, model: str, version: int, features: pa.Table, outputs: pa.Table,
                     **options: Any) -> pa.Array:
        """As :meth:`append_frame`, for large batches: returns the ids as an Arrow array."""
        batch = self._prediction_batch(model, version, features, outputs, **options)
        self.writer.append("predictions", model, batch)
        return batch.column(0)

    @contextlib.contextmanager
    def staged_predictions(self, model: str) -> Iterator[Callable[..., pa.Array]]:
        """For a batch job: ``append_arrow(version, features, outputs, **options)`` inside the
        block stages predictions that appear when it ends, all together, and are dropped if
        it raises (see :mod:`keepwell.logbook.staging`).

        >>> import tempfile, pandas as pd
        >>> book = Logbook(tempfile.mkdtemp())
        >>> with book.staged_predictions("churn") as append_arrow:
        ...     ids = append_arrow(1, pd.DataFrame({"age": [31.0]}),
        ...                        pd.DataFrame({"prediction": [0]}), arm="batch")
        ...     book.predictions("churn").num_rows
        0
        >>> book.predictions("churn").num_rows
        1
        >>> book.close()
        """
        check_model_name(model)
        with self.writer.staged("predictions", model) as job:
            def append_arrow(version: int, features: Any, outputs: Any,
                             **options: Any) -> pa.Array:
                batch = self._prediction_batch(model, version, features, outputs, **options)
                job.append(batch)
                return batch.column(0)

            yield append_arrow

    def _prediction_batch(self, model: str, version: int, features: Any, outputs: Any,
                          **options: Any) -> pa.RecordBatch:
        check_model_name(model)
        return prediction_batch(model, version, to_table(features, "features"),
                                to_table(outputs, "outputs"), **options)

    def append(self, records: Prediction | Sequence[Prediction]) -> list[str]:
        """Log single predictions (one or several); returns their request ids in order.

        Concurrent callers are combined: while one thread builds and writes a batch, the
        records other threads hand in wait, and the next of them writes all of them as one
        batch. Syncs overlap the next batch: a caller lets the next one write as soon as its
        own batch is written, then waits for a sync that covers it (one sync covers every
        batch written while the previous one ran). Each call still returns only once its own
        records are on disk.
        """
        items = [records] if isinstance(records, Prediction) else list(records)
        slot = _Slot(items)
        with self._turn:
            self._pending.append(slot)
            writes = not self._writing
            self._writing = True
        if not writes:
            slot.wait()  # until done, or until handed the turn to write
            if slot.done:
                return slot.result()
        with self._turn:  # this caller writes everything handed in so far
            group, self._pending = self._pending, []
        try:
            written = self._write_group(group)
            try:
                if slot.error is None:
                    for part in written:
                        self.writer.commit(part)
            except Exception as exc:  # noqa: BLE001  (no record of the group is acknowledged)
                for waiting in group:
                    waiting.error = exc
        except BaseException as exc:
            # Interrupted (KeyboardInterrupt, SystemExit): nothing of the group is acknowledged,
            # and no waiting caller may be left waiting.
            for waiting in group:
                waiting.error = waiting.error or LogbookUnavailableError(
                    f"the append was interrupted ({type(exc).__name__}); records not kept.")
            raise
        finally:
            for waiting in group:
                waiting.done = True
                waiting.wake()
        return slot.result()

    def _write_group(self, group: list[_Slot]) -> list[Written]:
        """Write the group's records (their ids, or the error, go to each slot), then hand the
        turn to the next caller, who writes while this batch syncs; what to commit."""
        written: list[Written] = []
        try:
            ids = self._write_records([r for s in group for r in s.records], written)
        except Exception as exc:  # noqa: BLE001  (every record of the group failed with it)
            for waiting in group:
                waiting.error = exc
        else:
            offset = 0
            for waiting in group:
                waiting.ids = ids[offset:offset + len(waiting.records)]
                offset += len(waiting.records)
        finally:
            with self._turn:
                following = self._pending[0] if self._pending else None
                self._writing = following is not None
            if following is not None:
                following.wake()
        return written

    def _write_records(self, items: list[Prediction], written: list[Written]) -> list[str]:
        """Write one batch per model version and arm among ``items`` (each write is added to
        ``written``, to be committed by the caller); their ids in order."""
        groups: dict[tuple[str, int, str], list[int]] = {}
        for i, record in enumerate(items):
            groups.setdefault((record.model, record.version, record.arm), []).append(i)
        ids: list[str] = [""] * len(items)
        for (model, version, arm), members in groups.items():
            group = [items[i] for i in members]
            batch, batch_ids = self._records_batch(model, version, arm, group)
            written.append(self.writer.write("predictions", model, batch))
            for i, rid in zip(members, batch_ids, strict=True):
                ids[i] = rid
        return ids

    def _records_batch(self, model: str, version: int, arm: str, group: list[Prediction]
                       ) -> tuple[pa.RecordBatch, list[str]]:
        """The group as one batch: through the layout of an earlier batch with the same names
        when its values fit (see :mod:`keepwell.logbook.rows`), else built and typed anew."""
        first = group[0]
        key = (model, tuple(first.features), tuple(first.scores))
        layout = self._layouts.get(key)
        if layout is not None and arm in ARMS:
            built = layout.batch(group, model, version, arm)
            if built is not None:
                return built
        names = list(dict.fromkeys(k for r in group for k in r.features))
        features = pa.Table.from_pylist([dict(r.features) for r in group],
                                        schema=_schema_of(group, names)
                                        if len(names) != len(first.features) else None)
        score_names = list(dict.fromkeys(k for r in group for k in r.scores))
        outputs = pa.table({"prediction": [r.prediction for r in group],
                            **{n: [r.scores.get(n) for r in group] for n in score_names}})
        batch = self._prediction_batch(
            model, version, features, outputs, arm=arm,
            ts=[r.ts or datetime.now(UTC) for r in group],
            latency_ms=[r.latency_ms for r in group],
            subjects=[r.subject for r in group],
            request_ids=[r.request_id or new_id() for r in group])
        if len(self._layouts) >= _MAX_LAYOUTS:
            self._layouts.clear()
        layout = RowLayout.of(batch.schema)
        self._layouts[(model, layout.feature_names, layout.score_names)] = layout
        return batch, id_strings(batch.column(0)).to_pylist()

    # -- feedback -------------------------------------------------------------------------

    def add_feedback(self, model: str, labels: Any, *, request_ids: Any = None,
                     subjects: Any = None, event_ts: Any = None) -> FeedbackResult:
        """Log labels for earlier predictions: by ``request_ids``, or by ``subjects`` and the
        ``event_ts`` each label is about. Labels may arrive late and more than once (the latest
        received wins); labels for unknown ids are kept and counted as unmatched."""
        check_model_name(model)
        if isinstance(labels, Feedback):
            raise ValidationError("pass labels as a list; use add_feedback_records for "
                                  "Feedback objects.")
        batch = feedback_batch(model, labels, request_ids=request_ids, subjects=subjects,
                               event_ts=event_ts)
        self.writer.append("feedback", model, batch)
        unmatched = self._count_unmatched(model, batch) if batch.num_rows else 0
        return FeedbackResult(batch.num_rows, unmatched)

    def add_feedback_records(self, records: Sequence[Feedback]) -> FeedbackResult:
        accepted = unmatched = 0
        for model in sorted({r.model for r in records}):
            group = [r for r in records if r.model == model]
            by_id = [r for r in group if r.request_id is not None]
            by_subject = [r for r in group if r.request_id is None]
            if by_id:
                result = self.add_feedback(model, [r.label for r in by_id],
                                           request_ids=[r.request_id for r in by_id])
                accepted, unmatched = accepted + result.accepted, unmatched + result.unmatched
            if by_subject:
                result = self.add_feedback(model, [r.label for r in by_subject],
                                           subjects=[r.subject for r in by_subject],
                                           event_ts=[r.event_ts for r in by_subject])
                accepted, unmatched = accepted + result.accepted, unmatched + result.unmatched
        return FeedbackResult(accepted, unmatched)

    def _count_unmatched(self, model: str, batch: pa.RecordBatch) -> int:
        fresh = pa.Table.from_batches([batch])
        with self.connect(model, labelled=False) as con:
            con.register("_fresh", fresh)
            row = con.execute("""
                SELECT count(*) FROM _fresh f WHERE
                  (f.request_id IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM predictions p WHERE p.request_id = f.request_id))
                  OR (f.request_id IS NULL AND NOT EXISTS (
                     SELECT 1 FROM predictions p WHERE p.model = f.model
                     AND p.subject = f.subject AND p.ts <= f.event_ts))
            """).fetchone()
        return int(row[0]) if row else 0

    # -- housekeeping ---------------------------------------------------------------------

    def seal(self) -> SealReport:
        """Close this process's segments and turn every unheld segment into Parquet."""
        if self._writer is not None:
            self._writer.rotate()
        return seal(self.layout, Tombstones(self.layout))

    def apply_retention(self, max_age: timedelta, *, now: datetime | None = None
                        ) -> RetentionReport:
        """Delete sealed days older than ``max_age`` (whole days: a day goes once all of it
        is older than the cutoff). Unsealed segments are sealed first."""
        cutoff = (now or datetime.now(UTC)) - max_age
        self.seal()
        removed = 0
        indexed: list[str] = []
        with self.layout.lock(exclusive=True):
            for kind in ("predictions", "feedback"):
                for model in self.layout.models(kind):
                    base = self.root / "sealed" / kind / model
                    if not base.is_dir():
                        continue
                    for day_dir in sorted(base.iterdir()):
                        try:
                            day_end = datetime.fromisoformat(day_dir.name).replace(
                                tzinfo=UTC) + timedelta(days=1)
                        except ValueError:
                            continue
                        if day_end <= cutoff:
                            if kind == "feedback" and drop_index(self.layout, model):
                                indexed.append(model)  # it holds labels of this day
                            for part in day_dir.glob("*.parquet"):
                                part.unlink()
                                removed += 1
                            day_dir.rmdir()
                            sync_dir(base)
        for model in indexed:
            build_index(self.layout, model)
        for model in self.layout.models("predictions"):
            build_columns(self.layout, model)  # and the label columns of deleted parts go
        return RetentionReport(removed, cutoff)

    def erase(self, subject: str) -> ErasureReport:
        """Remove every prediction and label about ``subject``; see
        :mod:`keepwell.logbook.erasure`."""
        if not isinstance(subject, str) or not subject:
            raise ValidationError("subject must be a non-empty string.")
        return erase_subject(self.layout, subject)

    def stats(self) -> dict[str, Any]:
        """Row counts per kind and model, sealed and unsealed."""
        with self.connect(labelled=False) as con:
            rows = con.execute("""
                SELECT 'predictions' AS kind, model, count(*) AS rows, min(ts) AS first,
                       max(ts) AS last FROM predictions GROUP BY model
                UNION ALL
                SELECT 'feedback', model, count(*), min(received_ts), max(received_ts)
                FROM feedback GROUP BY model ORDER BY 1, 2
            """).fetchall()
        return {"models": [dict(zip(("kind", "model", "rows", "first", "last"), r,
                                    strict=True)) for r in rows]}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
