"""The Logbook facade: single records and batches, feedback records, readiness and close."""

from __future__ import annotations

import errno
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from logbook_support import CountingFsync, ids_as_text, segment_table

from keepwell.errors import InvalidNameError, LogbookUnavailableError, ValidationError
from keepwell.logbook import Feedback, Logbook, Prediction
from keepwell.logbook.ids import new_id

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _record(i: int, **changes: object) -> Prediction:
    fields: dict[str, object] = {"model": "m", "version": 1, "features": {"x": float(i)},
                                 "prediction": i % 2, "scores": {"score": i / 10},
                                 "ts": T0 + timedelta(minutes=i)}
    fields.update(changes)
    return Prediction(**fields)  # type: ignore[arg-type]


def test_append_one_record(book: Logbook) -> None:
    (rid,) = book.append(_record(1, subject="ann", latency_ms=3.5, arm="shadow"))
    (row,) = book.predictions("m").to_pylist()
    assert str(row["request_id"]) == rid
    assert (row["x"], row["prediction"], row["score"], row["subject"], row["latency_ms"],
            row["arm"], row["ts"]) == (1.0, 1, 0.1, "ann", 3.5, "shadow", T0 + timedelta(
                minutes=1))


def test_append_records_of_several_models_returns_ids_in_the_given_order(
        book: Logbook) -> None:
    records = [_record(0), _record(1, model="n"), _record(2, version=2), _record(3),
               _record(4, arm="challenger"), _record(5, model="n")]
    ids = book.append(records)
    assert len(ids) == len(set(ids)) == 6
    xs = {str(r["request_id"]): r["x"] for m in ("m", "n")
          for r in book.predictions(m).to_pylist()}
    assert [xs[i] for i in ids] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert book.predictions("m", version=2).column("x").to_pylist() == [2.0]


def test_given_request_ids_are_kept(book: Logbook) -> None:
    given = [new_id(), new_id()]
    assert book.append([_record(0, request_id=given[0]), _record(1, request_id=given[1])]) == \
        given
    assert book.append_frame("m", 1, {"x": [5.0]}, {"prediction": [1]},
                             request_ids=[given[0].upper()]) == [given[0]]


def test_a_given_request_id_is_kept_beside_records_without_one(book: Logbook) -> None:
    given = new_id()
    ids = book.append([_record(0, request_id=given), _record(1)])
    assert ids[0] == given


def test_features_of_every_record_are_kept(book: Logbook) -> None:
    book.append([_record(0), _record(1, features={"x": 1.0, "y": 7.0})])
    table = book.predictions("m")
    assert "y" in table.column_names and table.column("y").to_pylist() == [None, 7.0]


def test_a_null_request_id_is_refused_before_anything_is_written(book: Logbook) -> None:
    with pytest.raises(ValidationError, match="request_ids"):
        book.append_frame("m", 1, {"x": [1.0, 2.0]}, {"prediction": [0, 1]},
                          request_ids=[new_id(), None])
    assert book.predictions("m").num_rows == 0


def test_append_frame_takes_pandas_and_returns_text_ids(book: Logbook) -> None:
    ids = book.append_frame("m", 3, pd.DataFrame({"age": [31.0, 45.0]}),
                            pd.DataFrame({"prediction": [0, 1], "score": [0.2, 0.9]}),
                            subjects="ann", latency_ms=2.0)
    assert ids_as_text(book.predictions("m")["request_id"]) == ids
    assert book.predictions("m").column("subject").to_pylist() == ["ann", "ann"]


def test_append_arrow_returns_the_arrow_ids(book: Logbook) -> None:
    import pyarrow as pa

    ids = book.append_arrow("m", 1, pa.table({"x": [1.0, 2.0, 3.0]}),
                            pa.table({"prediction": [1, 2, 3]}))
    assert isinstance(ids.type, pa.UuidType)
    assert ids_as_text(ids) == ids_as_text(book.predictions("m")["request_id"])


@pytest.mark.parametrize("model", ["", "../etc", "a b", "x" * 200, "-lead"])
def test_model_names_are_checked(book: Logbook, model: str) -> None:
    with pytest.raises(InvalidNameError):
        book.append(_record(0, model=model))
    with pytest.raises(InvalidNameError):
        book.add_feedback(model, [1], request_ids=[new_id()])


def test_feedback_records_by_id_and_by_subject(book: Logbook) -> None:
    ids = book.append([_record(0, subject="ann"), _record(1, model="n")])
    result = book.add_feedback_records([
        Feedback("m", 1, request_id=ids[0]),
        Feedback("n", 0, request_id=ids[1]),
        Feedback("m", 1, subject="ann", event_ts=T0 + timedelta(hours=1)),
        Feedback("m", 0, subject="zed", event_ts=T0),
        Feedback("n", 1, request_id=new_id()),
    ])
    assert (result.accepted, result.unmatched) == (5, 2)
    assert book.feedback().num_rows == 5
    assert sorted(book.unmatched_feedback().column("label").to_pylist()) == [0, 1]


def test_a_feedback_object_must_go_through_add_feedback_records(book: Logbook) -> None:
    with pytest.raises(ValidationError, match="add_feedback_records"):
        book.add_feedback("m", Feedback("m", 1, request_id=new_id()))


def test_ready_until_a_sync_fails(tmp_path: Path) -> None:
    fsync = CountingFsync(fail_after=3)
    book = Logbook(tmp_path / "log", fsync=fsync)
    try:
        assert book.ready  # no writer yet
        (kept,) = book.append(_record(0))
        assert book.ready
        with pytest.raises(LogbookUnavailableError):
            book.append(_record(1))
        assert not book.ready
        with pytest.raises(LogbookUnavailableError):
            book.add_feedback("m", [1], request_ids=[kept])
        assert kept in ids_as_text(book.predictions("m")["request_id"])  # reads still work
    finally:
        book.close()
    assert fsync.failures == 1
    assert isinstance(book.writer.error, OSError) and book.writer.error.errno == errno.EIO


def test_close_stops_appends(book: Logbook) -> None:
    book.append(_record(0))
    book.close()
    assert not book.ready
    with pytest.raises(LogbookUnavailableError, match="closed"):
        book.append(_record(1))
    assert book.predictions("m").num_rows == 1


def test_batch_durability_through_the_facade(tmp_path: Path) -> None:
    book = Logbook(tmp_path / "log", durability="batch", flush_interval_ms=5)
    try:
        ids = book.append([_record(i) for i in range(10)])
    finally:
        book.close()
    assert sorted(ids_as_text(segment_table(tmp_path / "log")["request_id"])) == sorted(ids)


def test_an_interrupted_writer_leaves_no_caller_of_its_group_waiting(
        book: Logbook, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt in the thread writing a group: the others in it get an error,
    nothing of the group is acknowledged, and nobody waits forever."""
    write = Logbook._write_records
    calls: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def slow_then_interrupted(self: Logbook, items: Any, written: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            entered.set()  # the first writer builds until the next two have queued
            assert release.wait(30)
        else:
            raise KeyboardInterrupt
        return write(self, items, written)

    monkeypatch.setattr(Logbook, "_write_records", slow_then_interrupted)
    outcomes: dict[str, object] = {}

    def append(name: str) -> None:
        try:
            outcomes[name] = book.append(Prediction("m", 1, {"x": 1.0}, prediction=0))
        except BaseException as exc:  # noqa: BLE001  (the interrupt is what is checked)
            outcomes[name] = exc

    first = threading.Thread(target=append, args=("first",))
    first.start()
    assert entered.wait(30)
    others = [threading.Thread(target=append, args=(n,)) for n in ("second", "third")]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while len(book._pending) < 2:  # both queued behind the first writer
        assert time.monotonic() < deadline
        time.sleep(0.001)
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert calls == [1, 2]  # the second writer took both queued records as one group
    assert isinstance(outcomes["first"], list)
    errors = sorted(type(outcomes[n]).__name__ for n in ("second", "third"))
    assert errors == ["KeyboardInterrupt", "LogbookUnavailableError"]
    assert book.predictions("m").num_rows == 1
