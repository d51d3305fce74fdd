"""The single-record fast path: the same batch as the general way, and the general way whenever
a value would not fit without loss."""

from __future__ import annotations

import os
import struct
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from logbook_support import (
    CountingFsync,
    GatedFsync,
    ids_as_text,
    segment_files,
    segment_table,
)

from keepwell.errors import ValidationError
from keepwell.logbook import Logbook, Prediction
from keepwell.logbook.ids import new_id
from keepwell.logbook.records import prediction_batch
from keepwell.logbook.rows import RowLayout
from keepwell.logbook.segments import MAGIC, read_segment

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _record(i: int, **changes: Any) -> Prediction:
    fields: dict[str, Any] = {
        "model": "m", "version": 2, "arm": "challenger",
        "features": {"x": i / 3, "n": i, "city": f"c{i % 3}", "flag": i % 2 == 0},
        "prediction": i % 2, "scores": {"proba_a": 0.25, "proba_b": 0.75},
        "latency_ms": 1.5 + i, "subject": f"s{i}", "request_id": new_id(),
        "ts": T0 + timedelta(seconds=i)}
    fields.update(changes)
    return Prediction(**fields)


def _general(records: list[Prediction]) -> pa.RecordBatch:
    """The same records the general way (as Logbook.append builds a group it cannot type)."""
    first = records[0]
    return prediction_batch(
        first.model, first.version,
        pa.Table.from_pylist([dict(r.features) for r in records]),
        pa.table({"prediction": [r.prediction for r in records],
                  **{n: [r.scores[n] for r in records] for n in first.scores}}),
        arm=first.arm, ts=[r.ts for r in records], latency_ms=[r.latency_ms for r in records],
        subjects=[r.subject for r in records], request_ids=[r.request_id for r in records])


def test_the_fast_path_builds_the_batch_the_general_way_builds() -> None:
    records = [_record(i) for i in range(5)]
    layout = RowLayout.of(_general(records[:1]).schema)
    built = layout.batch(records, "m", 2, "challenger")
    assert built is not None
    batch, ids = built
    assert batch.equals(_general(records))
    assert ids == [r.request_id for r in records]


def test_missing_values_new_ids_and_now_fill_in() -> None:
    layout = RowLayout.of(_general([_record(0)]).schema)
    record = _record(1, request_id=None, ts=None, latency_ms=None, subject=None,
                     features={"x": None, "n": None, "city": None, "flag": None})
    before = datetime.now(UTC)
    built = layout.batch([record, _record(2, request_id=None)], "m", 2, "challenger")
    assert built is not None
    batch, ids = built
    row = batch.to_pylist()[0]
    assert [row[k] for k in ("x", "n", "city", "flag", "latency_ms", "subject")] == [None] * 6
    assert before - timedelta(seconds=1) <= row["ts"] <= datetime.now(UTC)
    assert ids == ids_as_text(batch.column("request_id"))
    assert ids[0] < ids[1] and len(set(ids)) == 2


def test_a_time_in_another_zone_is_the_same_instant() -> None:
    layout = RowLayout.of(_general([_record(0)]).schema)
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    built = layout.batch([_record(0, ts=paris)], "m", 2, "challenger")
    assert built is not None
    assert built[0].column("ts").to_pylist() == [T0]


@pytest.mark.parametrize("changes", [
    {"features": {"x": 0.5, "n": 1.5, "city": "c", "flag": True}},  # 1.5 would become 1
    {"features": {"x": 0.5, "n": True, "city": "c", "flag": True}},  # a bool is no count
    {"features": {"x": 0.5, "n": 1, "city": 7, "flag": True}},
    {"features": {"x": 0.5, "n": 1, "city": "c", "flag": 1}},
    {"features": {"n": 1, "x": 0.5, "city": "c", "flag": True}},  # another order
    {"features": {"x": 0.5, "n": 1, "city": "c"}},
    {"scores": {"proba_b": 0.75, "proba_a": 0.25}},
    {"prediction": 0.5},
    {"ts": datetime(2024, 3, 1, 10, 0)},  # naive: the general way refuses it
    {"ts": "2024-03-01T10:00:00+00:00"},  # text: the general way parses it
    {"request_id": "not-a-uuid"},
])
def test_a_record_that_does_not_fit_goes_the_general_way(changes: dict[str, Any]) -> None:
    layout = RowLayout.of(_general([_record(0)]).schema)
    assert layout.batch([_record(1), _record(2, **changes)], "m", 2, "challenger") is None


def test_an_integer_in_a_float_column_is_kept_exactly() -> None:
    layout = RowLayout.of(_general([_record(0)]).schema)
    built = layout.batch([_record(1, features={"x": 3, "n": 1, "city": "c", "flag": True})],
                         "m", 2, "challenger")
    assert built is not None
    assert built[0].column("x").to_pylist() == [3.0]
    too_big = {"x": 2**60 + 1, "n": 1, "city": "c", "flag": True}  # not exactly a double
    assert layout.batch([_record(1, features=too_big)], "m", 2, "challenger") is None


def test_numpy_scalars_fit_their_kind_of_column() -> None:
    layout = RowLayout.of(_general([_record(0)]).schema)
    features = {"x": np.float32(0.5), "n": np.int64(7), "city": np.str_("c"),
                "flag": np.bool_(True)}
    built = layout.batch([_record(1, features=features, prediction=np.int64(1))], "m", 2,
                         "challenger")
    assert built is not None
    row = built[0].to_pylist()[0]
    assert (row["x"], row["n"], row["city"], row["flag"], row["prediction"]) == (
        0.5, 7, "c", True, 1)
    truncating = dict(features, n=np.float64(7.5))
    assert layout.batch([_record(1, features=truncating)], "m", 2, "challenger") is None


def test_a_column_of_another_type_always_goes_the_general_way() -> None:
    record = _record(0, features={"when": T0})
    layout = RowLayout.of(_general([record]).schema)
    assert layout.batch([record], "m", 2, "challenger") is None


# -- through Logbook.append -------------------------------------------------------------------

def test_appends_that_change_type_lose_nothing(book: Logbook) -> None:
    values: list[Any] = [1, 2, 1.5, None, 7, 2.25]
    ids = [book.append(Prediction("m", 1, {"v": v}, prediction=0))[0] for v in values]
    found = {str(r["request_id"]): r["v"] for r in book.predictions("m").to_pylist()}
    assert [found[i] for i in ids] == values


def test_single_appends_of_one_shape_share_one_segment_and_schema(book: Logbook,
                                                                  tmp_path: Path) -> None:
    for i in range(30):
        book.append(_record(i, features={"x": None if i % 4 else i / 3, "n": i,
                                         "city": None if i % 5 else "c", "flag": i % 2 == 0}))
    (segment,) = segment_files(tmp_path / "log")
    contents = read_segment(segment)
    assert len(contents.batches) == 30
    assert contents.schema is not None
    assert contents.schema.field("x").type == pa.float64()
    assert segment_table(tmp_path / "log").num_rows == 30


def test_bad_records_are_still_refused_by_name(book: Logbook) -> None:
    book.append(_record(0))
    with pytest.raises(ValidationError, match="request_ids"):
        book.append(_record(1, request_id="not-a-uuid"))
    with pytest.raises(ValidationError, match="timezone-aware"):
        book.append(_record(2, ts=datetime(2024, 3, 1, 10, 0)))
    with pytest.raises(ValidationError, match="arm"):
        book.append(_record(3, arm="canary"))
    assert book.predictions("m").num_rows == 1


class _DoneFsync(CountingFsync):
    """Also records, once each fsync has returned, the file size it covered."""

    def __init__(self) -> None:
        super().__init__(delay_s=0.003)
        self.done: list[int] = []

    def __call__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        super().__call__(fd)
        with self._lock:
            self.done.append(size)


def _frame_ends(segment: Path) -> list[int]:
    """Where each record-batch frame of a segment ends (the schema frame skipped)."""
    data = segment.read_bytes()
    offset, ends = len(MAGIC), []
    while offset + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 8 + length
        ends.append(offset)
    return ends[1:]


def test_concurrent_appends_return_only_once_synced(tmp_path: Path) -> None:
    fsync = _DoneFsync()
    book = Logbook(tmp_path / "log", fsync=fsync)
    book.append(_record(0))
    synced_at_return: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(15):
            (rid,) = book.append(_record(100 * k + i))
            with lock:
                synced_at_return[rid] = max(fsync.done, default=0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (segment,) = segment_files(tmp_path / "log")
    batches = read_segment(segment).batches
    ends = {rid: end for batch, end in zip(batches, _frame_ends(segment), strict=True)
            for rid in ids_as_text(batch.column("request_id"))}
    book.close()
    assert len(synced_at_return) == 120
    assert all(synced_at_return[rid] >= ends[rid] for rid in synced_at_return)


def test_concurrent_appends_share_syncs(tmp_path: Path) -> None:
    """Records handed in while a sync runs are written together and share the next sync. The
    first sync is held until every thread's record is written (a slow disk), so the result
    does not depend on how the threads happen to be scheduled."""
    fsync = GatedFsync()
    book = Logbook(tmp_path / "log", fsync=fsync)
    book.append(_record(0))
    before = fsync.count
    fsync.hold_next(lambda: segment_table(tmp_path / "log").num_rows == 9)
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        record = _record(k + 1)
        barrier.wait()
        book.append(record)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    syncs = fsync.count - before
    assert book.predictions("m").num_rows == 9
    book.close()
    assert fsync.met, "the other records were not written while a sync ran"
    assert syncs <= 2, syncs  # the held one, and one for everything written meanwhile
