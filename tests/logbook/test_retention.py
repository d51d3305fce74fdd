"""Retention: whole sealed days older than the cutoff go, every other day stays intact."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from keepwell.logbook import Logbook

NOW = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _log_days(book: Logbook, model: str, days_ago: list[int], per_day: int = 3) -> None:
    stamps = [NOW - d * DAY + timedelta(minutes=i) for d in days_ago for i in range(per_day)]
    book.append_frame(model, 1, {"x": [1.0] * len(stamps)}, {"prediction": [0] * len(stamps)},
                      ts=stamps)


def _per_day(book: Logbook, model: str) -> Counter[str]:
    return Counter(t.date().isoformat() for t in book.predictions(model)["ts"].to_pylist())


def _day_dirs(book: Logbook, model: str) -> list[str]:
    base = book.root / "sealed" / "predictions" / model
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def test_retention_drops_whole_days_older_than_the_cutoff(book: Logbook) -> None:
    _log_days(book, "a", [6, 5, 4, 3, 2, 1, 0])
    _log_days(book, "b", [5, 0], per_day=2)
    book.seal()
    before_a, before_b = _per_day(book, "a"), _per_day(book, "b")
    report = book.apply_retention(timedelta(days=3), now=NOW)
    assert report.cutoff == NOW - 3 * DAY  # 2024-03-07 15:00: days ending by then go
    assert report.files_removed == 3 + 1
    gone = {"2024-03-04", "2024-03-05", "2024-03-06"}
    assert _per_day(book, "a") == Counter({d: n for d, n in before_a.items() if d not in gone})
    assert _per_day(book, "b") == Counter({d: n for d, n in before_b.items() if d not in gone})
    assert _day_dirs(book, "a") == ["2024-03-07", "2024-03-08", "2024-03-09", "2024-03-10"]
    assert _day_dirs(book, "b") == ["2024-03-10"]


def test_a_day_ending_exactly_at_the_cutoff_goes_and_the_next_one_stays(book: Logbook) -> None:
    _log_days(book, "a", [4, 3, 2])
    midnight = datetime(2024, 3, 10, tzinfo=UTC)
    report = book.apply_retention(timedelta(days=3), now=midnight)  # cutoff 03-07 00:00
    assert report.files_removed == 1
    assert sorted(_per_day(book, "a")) == ["2024-03-07", "2024-03-08"]


def test_unsealed_old_records_are_sealed_then_expired(book: Logbook) -> None:
    _log_days(book, "a", [30, 0])  # not sealed yet
    report = book.apply_retention(timedelta(days=7), now=NOW)
    assert report.files_removed == 1
    assert _per_day(book, "a") == Counter({"2024-03-10": 3})
    assert list((book.root / "segments" / "predictions" / "a").glob("*.seg")) == []


def test_nothing_older_than_the_cutoff_removes_nothing(book: Logbook) -> None:
    _log_days(book, "a", [2, 1, 0])
    book.seal()
    before = _per_day(book, "a")
    assert book.apply_retention(timedelta(days=30), now=NOW).files_removed == 0
    assert _per_day(book, "a") == before


def test_feedback_expires_by_the_day_it_was_received(book: Logbook) -> None:
    (rid,) = book.append_frame("a", 1, {"x": [1.0]}, {"prediction": [1]})  # ts: now
    book.add_feedback("a", [1], request_ids=[rid])
    received = datetime.now(UTC)
    assert book.apply_retention(timedelta(days=1), now=received).files_removed == 0
    assert book.feedback("a").num_rows == 1
    book.apply_retention(timedelta(days=1), now=received + 3 * DAY)
    assert book.feedback("a").num_rows == 0
