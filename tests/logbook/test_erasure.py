"""Erasure: every record about one subject goes, from predictions and feedback, sealed and
unsealed, and nothing else does (checked by counts); later records are kept; the tombstone
names the subject only by its sha256."""

from __future__ import annotations

import hashlib
import json
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from logbook_support import ids_as_text, segment_files

from keepwell.errors import ValidationError
from keepwell.logbook import Logbook

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _log(book: Logbook, model: str, subjects: list[str | None],
         minute: int | None) -> dict[str, str]:
    """Log one prediction per subject, at T0 + minute (+1 per row), or now if minute is None."""
    stamps = None if minute is None else [T0 + (minute + i) * MIN for i in range(len(subjects))]
    ids = book.append_frame(model, 1, {"x": [float(i) for i in range(len(subjects))]},
                            {"prediction": [1] * len(subjects)}, ts=stamps, subjects=subjects)
    return {rid: s for rid, s in zip(ids, subjects, strict=True) if s is not None}


def _populate(book: Logbook) -> dict[str, str]:
    """Predictions and feedback of two models, some sealed and some not; returns the subject
    of each prediction that has one."""
    owner = _log(book, "m", ["alice", "bob", "alice", "carol", None], 0)
    owner |= _log(book, "n", ["alice", "bob"], 10)
    by_subject = {s: [r for r, o in owner.items() if o == s] for s in ("alice", "bob")}
    book.add_feedback("m", [1, 0], request_ids=[by_subject["alice"][0], by_subject["bob"][0]])
    book.add_feedback("m", [1], subjects=["alice"], event_ts=[T0 + 3 * MIN])
    book.seal()
    later = _log(book, "m", ["alice", "carol", "bob", None], 20)
    owner |= later
    fresh = list(later)
    book.add_feedback("m", [1, 1, 0], request_ids=[fresh[0], fresh[1], fresh[2]])
    book.add_feedback("n", [0], subjects=["alice"], event_ts=[T0 + 11 * MIN])
    book.add_feedback("m", [0], subjects=["bob"], event_ts=[T0 + 22 * MIN])
    book.add_feedback("m", [9], request_ids=["01890000-0000-7000-8000-00000000abcd"])  # unknown
    return owner


def _census(book: Logbook, owner: dict[str, str]) -> tuple[Counter[str | None],
                                                           Counter[str | None]]:
    """Predictions per subject, and feedback per subject it is about (by subject or by the
    subject of the prediction it labels)."""
    predictions = Counter(book.query("SELECT subject FROM predictions").column(
        "subject").to_pylist())
    feedback: Counter[str | None] = Counter()
    table = book.query("SELECT request_id::VARCHAR AS request_id, subject FROM feedback")
    for rid, subject in zip(table.column("request_id").to_pylist(),
                            table.column("subject").to_pylist(), strict=True):
        feedback[subject if subject is not None else owner.get(rid)] += 1
    return predictions, feedback


def _without(counter: Counter[str | None], key: str) -> Counter[str | None]:
    return Counter({k: v for k, v in counter.items() if k != key})


def test_erasure_removes_exactly_the_subject_sealed_and_unsealed(book: Logbook) -> None:
    owner = _populate(book)
    predictions, feedback = _census(book, owner)
    assert predictions["alice"] == 4 and feedback["alice"] == 4  # the setup covers each case
    report = book.erase("alice")
    assert (report.predictions, report.feedback) == (predictions["alice"], feedback["alice"])
    assert report.files_rewritten >= 2
    assert sorted(report.request_ids) == sorted(
        bytes.fromhex(r.replace("-", "")).hex() for r, s in owner.items() if s == "alice")
    after = _census(book, owner)
    assert after == (_without(predictions, "alice"), _without(feedback, "alice"))
    # Sealing the rest keeps the same counts, and the rows are physically gone.
    book.seal()
    assert _census(book, owner) == after
    assert segment_files(book.root) == [] and segment_files(book.root, "feedback") == []
    alice_ids = {r for r, s in owner.items() if s == "alice"}
    for path in (book.root / "sealed").rglob("*.parquet"):
        table = pq.read_table(path)
        assert "alice" not in table.column("subject").to_pylist(), path
        assert not alice_ids & set(ids_as_text(table["request_id"])), path


def test_erasing_an_unknown_subject_changes_nothing(book: Logbook) -> None:
    owner = _populate(book)
    before = _census(book, owner)
    report = book.erase("nobody")
    assert (report.predictions, report.feedback, report.files_rewritten) == (0, 0, 0)
    assert _census(book, owner) == before


def test_a_new_prediction_after_the_erasure_is_kept(book: Logbook) -> None:
    owner = _populate(book)
    book.erase("alice")
    fresh = _log(book, "m", ["alice"], None)  # ts is now: after the erasure
    owner |= fresh
    book.add_feedback("m", [1], request_ids=list(fresh))
    predictions, feedback = _census(book, owner)
    assert (predictions["alice"], feedback["alice"]) == (1, 1)
    book.seal()
    assert _census(book, owner) == (predictions, feedback)
    # A second erasure takes the new one too.
    report = book.erase("alice")
    assert (report.predictions, report.feedback) == (1, 1)
    predictions, feedback = _census(book, owner)
    assert (predictions["alice"], feedback["alice"]) == (0, 0)


def test_the_tombstone_names_the_subject_only_by_its_sha256(book: Logbook) -> None:
    owner = _populate(book)
    report = book.erase("alice")
    digest = hashlib.sha256(b"alice").hexdigest()
    assert report.subject_sha256 == digest
    (tombstone,) = (book.root / "erasures").iterdir()
    assert tombstone.name == f"{digest}.json"
    text = tombstone.read_text()
    assert "alice" not in text
    data = json.loads(text)
    assert set(data) == {"erased_at", "request_ids"}
    assert datetime.fromisoformat(data["erased_at"]).tzinfo is not None
    assert sorted(data["request_ids"]) == sorted(
        r.replace("-", "") for r, s in owner.items() if s == "alice")
    assert stat.S_IMODE(tombstone.stat().st_mode) == 0o600
    assert stat.S_IMODE(tombstone.parent.stat().st_mode) == 0o700


def test_erasure_reaches_a_segment_another_writer_still_holds(tmp_path: Path) -> None:
    writer = Logbook(tmp_path / "log")
    eraser = Logbook(tmp_path / "log")
    try:
        owner = _log(writer, "m", ["alice", "bob", "alice"], 0)
        (held,) = segment_files(writer.root)
        report = eraser.erase("alice")
        assert report.predictions == 2 and held.exists()  # not rewritable: tombstoned
        assert _census(eraser, owner)[0] == Counter({"bob": 1})
        owner |= _log(writer, "m", ["alice"], None)  # the same open segment, after erasure
        assert _census(eraser, owner)[0] == Counter({"bob": 1, "alice": 1})
        writer.close()
        eraser.seal()
        assert _census(eraser, owner)[0] == Counter({"bob": 1, "alice": 1})
        subjects = [s for part in (tmp_path / "log" / "sealed").rglob("*.parquet")
                    for s in pq.read_table(part).column("subject").to_pylist()]
        assert sorted(subjects) == ["alice", "bob"]  # the erased rows were not sealed
    finally:
        writer.close()
        eraser.close()


@pytest.mark.parametrize("subject", ["", None, 7])
def test_the_subject_must_be_a_non_empty_string(book: Logbook, subject: object) -> None:
    with pytest.raises(ValidationError, match="subject"):
        book.erase(subject)  # type: ignore[arg-type]


def test_a_prediction_logged_after_the_erasure_with_an_earlier_ts_is_kept(
        book: Logbook) -> None:
    _log(book, "m", ["alice", "bob"], 0)
    book.erase("alice")
    owner = _log(book, "m", ["alice"], 30)  # logged now, about an event at T0 + 30 min
    assert set(owner) <= set(ids_as_text(book.predictions("m")["request_id"]))
    book.seal()
    assert set(owner) <= set(ids_as_text(book.predictions("m")["request_id"]))
