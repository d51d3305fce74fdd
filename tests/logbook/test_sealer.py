"""Sealing: unheld segments become Parquet under sealed/<kind>/<model>/<day>/, a live writer's
segment is left alone, readers see every record exactly once while sealing runs, and a crash
half-way through sealing is completed without duplicates."""

from __future__ import annotations

import shutil
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from logbook_support import ids_as_text, segment_files

from keepwell.logbook import Logbook
from keepwell.logbook.segments import read_segment

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _log(book: Logbook, stamps: list[datetime], model: str = "m",
         subjects: list[str] | None = None) -> list[str]:
    return book.append_frame(model, 1, {"x": [float(i) for i in range(len(stamps))]},
                             {"prediction": [1] * len(stamps)}, ts=stamps, subjects=subjects)


def _count(book: Logbook, kind: str = "predictions") -> tuple[int, int]:
    key = "request_id" if kind == "predictions" else "feedback_id"
    row = book.query(f"SELECT count(*) AS n, count(DISTINCT {key}) AS d FROM {kind}")
    return row.column("n")[0].as_py(), row.column("d")[0].as_py()


def _parquet(root: Path) -> list[Path]:
    return sorted((root / "sealed").rglob("*.parquet"))


def test_sealing_writes_parquet_per_kind_model_and_day(book: Logbook) -> None:
    ids_a = _log(book, [T0, T0 + timedelta(minutes=1)], model="a")
    ids_b = _log(book, [T0], model="b")
    book.add_feedback("a", [1], request_ids=ids_a[:1])
    (seg_a,) = segment_files(book.root, "predictions", "a")
    (seg_b,) = segment_files(book.root, "predictions", "b")
    (seg_f,) = segment_files(book.root, "feedback", "a")
    report = book.seal()
    assert (report.segments, report.rows, report.files, report.torn_tails) == (3, 4, 3, 0)
    root = book.root
    today = datetime.now(UTC).date().isoformat()  # feedback goes by the day it was received
    assert [p.relative_to(root / "sealed").as_posix() for p in _parquet(root)] == sorted([
        f"predictions/a/2024-03-01/part-{seg_a.stem}.parquet",
        f"predictions/b/2024-03-01/part-{seg_b.stem}.parquet",
        f"feedback/a/{today}/part-{seg_f.stem}.parquet"])
    assert segment_files(root) == [] and segment_files(root, "feedback") == []
    table = pq.read_table(next((root / "sealed/predictions/a").rglob("*.parquet")))
    assert ids_as_text(table["request_id"]) == ids_a
    assert table.column("x").to_pylist() == [0.0, 1.0]
    assert ids_as_text(book.predictions("b")["request_id"]) == ids_b
    for path in _parquet(root):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_segment_spanning_midnight_is_split_by_utc_day(book: Logbook) -> None:
    midnight = datetime(2024, 3, 2, tzinfo=UTC)
    stamps = [midnight - timedelta(microseconds=1), midnight, midnight - timedelta(hours=5),
              midnight + timedelta(hours=23, minutes=59)]
    ids = _log(book, stamps)
    report = book.seal()
    assert (report.segments, report.rows, report.files) == (1, 4, 2)
    days = {p.parent.name: p for p in _parquet(book.root)}
    assert sorted(days) == ["2024-03-01", "2024-03-02"]
    assert ids_as_text(pq.read_table(days["2024-03-01"])["request_id"]) == [ids[0], ids[2]]
    assert ids_as_text(pq.read_table(days["2024-03-02"])["request_id"]) == [ids[1], ids[3]]
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids)


def test_a_segment_held_by_a_live_writer_is_not_sealed(tmp_path: Path) -> None:
    writer_book = Logbook(tmp_path / "log")
    sealer_book = Logbook(tmp_path / "log")
    try:
        ids = _log(writer_book, [T0, T0])
        (held,) = segment_files(writer_book.root)
        report = sealer_book.seal()
        assert (report.segments, report.rows) == (0, 0)
        assert held.exists() and _parquet(tmp_path / "log") == []
        assert _count(sealer_book) == (2, 2)
        ids += _log(writer_book, [T0])  # still appending to the same segment
        assert segment_files(writer_book.root) == [held]
        writer_book.close()
        report = sealer_book.seal()
        assert (report.segments, report.rows) == (1, 3)
        assert sorted(ids_as_text(sealer_book.predictions("m")["request_id"])) == sorted(ids)
    finally:
        writer_book.close()
        sealer_book.close()


def test_sealing_twice_seals_nothing_more(book: Logbook) -> None:
    _log(book, [T0] * 3)
    assert book.seal().rows == 3
    before = _parquet(book.root)
    again = book.seal()
    assert (again.segments, again.rows, again.files) == (0, 0, 0)
    assert _parquet(book.root) == before
    assert _count(book) == (3, 3)


def test_a_torn_tail_left_by_a_dead_writer_is_dropped_when_sealing(book: Logbook) -> None:
    ids = _log(book, [T0, T0])
    ids += _log(book, [T0])
    book.writer.rotate()
    (path,) = segment_files(book.root)
    with path.open("r+b") as f:  # the last frame cut short, as by a crash mid-write
        f.truncate(path.stat().st_size - 10)
    assert read_segment(path).torn_tail
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids[:2])
    report = book.seal()
    assert (report.segments, report.rows, report.torn_tails) == (1, 2, 1)
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids[:2])


def test_readers_see_every_record_exactly_once_while_sealing_runs(tmp_path: Path) -> None:
    book = Logbook(tmp_path / "log", max_segment_bytes=1)  # one segment per append
    try:
        for i in range(60):
            _log(book, [T0 + timedelta(hours=i), T0 + timedelta(hours=i, minutes=1)])
        book.writer.rotate()
        assert len(segment_files(book.root)) == 60
        expected = (120, 120)
        counts: list[tuple[int, int]] = []
        reports = []
        done = threading.Event()

        def seal() -> None:  # an exception here fails the test (pytest's thread hook)
            try:
                reports.append(book.seal())
            finally:
                done.set()

        sealer = threading.Thread(target=seal)
        sealer.start()
        while not done.is_set():
            counts.append(_count(book))
        sealer.join()
        assert [r.segments for r in reports] == [60]
        counts.append(_count(book))
        assert len(counts) >= 3
        assert set(counts) == {expected}, [c for c in counts if c != expected][:5]
        assert segment_files(book.root) == [] and len(_parquet(book.root)) == 60
    finally:
        book.close()


def _stage_crash(book: Logbook, tmp_path: Path, *, marker: bool) -> tuple[list[str], Path]:
    """Seal one segment, then put back the state a crash would leave: the Parquet complete,
    the segment still present, and its ``.sealed`` marker created (``marker``) or not yet."""
    ids = _log(book, [T0, T0 + timedelta(days=1), T0 + timedelta(days=1)])
    book.writer.rotate()
    (segment,) = segment_files(book.root)
    shutil.copy2(segment, tmp_path / "copy")
    assert book.seal().rows == 3
    shutil.copy2(tmp_path / "copy", segment)
    if marker:
        segment.with_suffix(".sealed").touch()
    return ids, segment


@pytest.mark.parametrize("marker", [True, False], ids=["after-marker", "before-marker"])
def test_a_crash_while_sealing_is_completed_without_duplicates(book: Logbook, tmp_path: Path,
                                                                marker: bool) -> None:
    ids, segment = _stage_crash(book, tmp_path, marker=marker)
    parts = {p: p.read_bytes() for p in _parquet(book.root)}
    assert len(parts) == 2
    # A reader in between sees each record once: the Parquet when marked, else the segment.
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids)
    report = book.seal()
    assert report.segments == (0 if marker else 1)
    assert not segment.exists() and not segment.with_suffix(".sealed").exists()
    assert sorted(p.name for p in _parquet(book.root)) == sorted(p.name for p in parts)
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids)
    assert _count(book) == (3, 3)


def test_a_marker_without_its_segment_is_removed(book: Logbook, tmp_path: Path) -> None:
    ids, segment = _stage_crash(book, tmp_path, marker=True)
    segment.unlink()  # the crash came after the segment was deleted, before the marker
    marker = segment.with_suffix(".sealed")
    assert marker.exists()
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == sorted(ids)
    book.seal()
    assert not marker.exists()
    assert _count(book) == (3, 3)


def test_seal_rotates_this_process_segments_first(book: Logbook) -> None:
    _log(book, [T0])
    report = book.seal()
    assert report.segments == 1 and segment_files(book.root) == []
    _log(book, [T0])  # a new segment, appended after sealing
    assert _count(book) == (2, 2)
    assert book.seal().segments == 1


def test_a_half_created_segment_left_by_a_crash_is_ignored(book: Logbook) -> None:
    """A writer killed while creating a segment leaves ``.<name>.seg.new``: never read, never
    sealed (it was never acknowledged into)."""
    ids = _log(book, [T0])
    book.writer.rotate()
    (segment,) = segment_files(book.root)
    leftover = segment.with_name(".crashed-000001.seg.new")
    leftover.write_bytes(segment.read_bytes()[:40])
    assert sorted(ids_as_text(book.predictions("m")["request_id"])) == ids
    report = book.seal()
    assert (report.segments, report.rows) == (1, 1)
    assert leftover.exists()
    assert ids_as_text(book.predictions("m")["request_id"]) == ids
