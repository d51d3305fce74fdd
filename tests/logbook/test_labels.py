"""The label index: the ``labels`` view answers the same with it as from raw feedback, and as a
plain recount of the feedback in Python; erasure and retention leave no label behind in it; a
stale index is never used."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from logbook_support import ids_as_text

from keepwell.logbook import Logbook
from keepwell.logbook.labels import build_index, read_index

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
LABELS = "SELECT request_id, label, label_ts, label_count FROM labels ORDER BY request_id"


def _log(book: Logbook, n: int, model: str = "m") -> list[str]:
    return book.append_frame(model, 1, {"x": [float(i) for i in range(n)]},
                             {"prediction": [i % 2 for i in range(n)]},
                             ts=[T0 + i * MIN for i in range(n)],
                             subjects=[f"s{i % 4}" for i in range(n)])


def _recount(book: Logbook, model: str = "m") -> list[tuple[Any, ...]]:
    """The labels view's rows computed in Python from every label received: the greatest
    feedback_id wins; a label by subject goes to the subject's latest prediction at or before
    its time."""
    predictions = book.predictions(model).to_pylist()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in book.feedback(model).to_pylist():
        rid = row["request_id"]
        if rid is None:
            earlier = [p for p in predictions if p["subject"] == row["subject"]
                       and p["ts"] <= row["event_ts"]]
            if not earlier:
                continue
            rid = max(earlier, key=lambda p: p["ts"])["request_id"]
        groups.setdefault(str(rid), []).append(row)
    return sorted((rid, max(rows, key=lambda r: r["feedback_id"])["label"],
                   max(r["received_ts"] for r in rows), len(rows))
                  for rid, rows in groups.items())


def _labels(book: Logbook) -> list[tuple[Any, ...]]:
    return [(str(r["request_id"]), r["label"], r["label_ts"], r["label_count"])
            for r in book.query(LABELS).to_pylist()]


def _without_index(book: Logbook, tmp_path: Path) -> list[tuple[Any, ...]]:
    """The labels view of a copy of the logbook with no index: the raw way."""
    copy = Path(tempfile.mkdtemp(dir=tmp_path)) / "log"
    shutil.copytree(book.root, copy)
    shutil.rmtree(copy / "labels", ignore_errors=True)
    raw = Logbook(copy)
    try:
        return _labels(raw)
    finally:
        raw.close()


def _index(book: Logbook, model: str = "m") -> Any:
    parts = sorted((book.root / "sealed" / "feedback" / model).glob("*/part-*.parquet"))
    return read_index(book.layout, model, parts)


def test_labels_through_the_index_match_the_raw_way_and_a_recount(book: Logbook,
                                                                  tmp_path: Path) -> None:
    ids = _log(book, 12)
    book.add_feedback("m", [1, 0, 1, 1, 0, 1], request_ids=ids[:6])
    book.seal()
    assert (index := _index(book)) is not None and len(index.parts) == 1
    # Late labels: two relabels, a new one, an unknown id; sealed, so the index is merged.
    book.add_feedback("m", [0, 0, 1, 1], request_ids=[ids[0], ids[1], ids[6],
                                                      "01900000-0000-7000-8000-000000000000"])
    book.seal()
    assert (index := _index(book)) is not None and len(index.parts) == 2
    assert index.subject_rows == 0
    # Fresh, unsealed: relabels of an indexed id and of a fresh one, and a label by subject.
    book.add_feedback("m", [0, 0], request_ids=[ids[2], ids[6]])
    book.add_feedback("m", [1], subjects=["s3"], event_ts=[T0 + 8 * MIN])
    expected = _recount(book)
    assert _labels(book) == expected == _without_index(book, tmp_path)
    assert {r[0]: r[1:] for r in expected}[ids[0]][0::2] == (0, 2)  # the latest of two
    assert {r[0]: r[3] for r in expected}[ids[7]] == 1  # by subject s3 at minute 8
    # Sealed again, the subject label is in a part the index covers and still counts.
    book.seal()
    assert (index := _index(book)) is not None and index.subject_rows == 1
    assert _labels(book) == expected == _without_index(book, tmp_path)


def test_joined_predictions_are_the_same_with_the_index(book: Logbook, tmp_path: Path) -> None:
    ids = _log(book, 20)
    book.add_feedback("m", [i % 2 for i in range(10)], request_ids=ids[::2])
    book.seal()
    book.add_feedback("m", [5], request_ids=[ids[0]])
    table = book.predictions("m", with_labels=True)
    assert table.column("label").to_pylist() == [5, None] + [(j // 2) % 2 if j % 2 == 0
                                                          else None for j in range(2, 20)]
    assert table.schema.field("request_id").type == "string"
    assert ids_as_text(table["request_id"]) == ids


def test_the_label_type_is_kept_and_merged_like_the_raw_feedback(book: Logbook,
                                                                 tmp_path: Path) -> None:
    ids = _log(book, 4)
    book.add_feedback("m", [1, 0], request_ids=ids[:2])
    book.seal()
    assert book.query(LABELS).schema.field("label").type == "int64"
    book.add_feedback("m", ["spam"], request_ids=[ids[1]])
    assert book.query(LABELS).schema.field("label").type == "string"
    assert _labels(book) == _without_index(book, tmp_path)


def test_an_index_is_written_only_when_feedback_was_sealed(book: Logbook) -> None:
    ids = _log(book, 3)
    book.seal()
    assert not book.layout.label_index("m").exists()
    book.add_feedback("m", [1], request_ids=[ids[0]])
    book.seal()
    written = book.layout.label_index("m").stat().st_mtime_ns
    assert not build_index(book.layout, "m")
    book.seal()
    assert book.layout.label_index("m").stat().st_mtime_ns == written
    assert oct(book.layout.label_index("m").stat().st_mode & 0o777) == "0o600"


def test_a_changed_part_makes_the_index_unused_until_rebuilt(book: Logbook,
                                                             tmp_path: Path) -> None:
    ids = _log(book, 4)
    book.add_feedback("m", [1, 0, 1], request_ids=ids[:3])
    book.seal()
    (part,) = (book.root / "sealed" / "feedback" / "m").glob("*/part-*.parquet")
    table = pq.read_table(part)
    pq.write_table(table.slice(0, 2), part)  # a part changed behind the index's back
    assert _index(book) is None
    assert _labels(book) == _recount(book) == _without_index(book, tmp_path)
    assert len(_labels(book)) == 2
    assert build_index(book.layout, "m") and _index(book) is not None
    assert _labels(book) == _recount(book)


def test_erasure_leaves_no_erased_label_in_the_index(book: Logbook, tmp_path: Path) -> None:
    ids = _log(book, 8)  # subjects s0..s3, twice each
    book.add_feedback("m", [1] * 8, request_ids=ids)
    book.seal()
    book.erase("s1")
    index = _index(book)
    assert index is not None
    kept = set(ids_as_text(pq.read_table(index.path)["request_id"]))
    assert kept == set(ids) - {ids[1], ids[5]}
    assert _labels(book) == _recount(book) == _without_index(book, tmp_path)


def test_retention_drops_expired_labels_from_the_index(book: Logbook) -> None:
    ids = _log(book, 4)
    book.add_feedback("m", [1, 1], request_ids=ids[:2])
    book.seal()
    assert _index(book) is not None
    book.apply_retention(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=3))
    assert not book.layout.label_index("m").exists()
    assert book.query(LABELS).num_rows == 0


def test_a_logbook_sealed_before_the_index_existed_reads_the_same(book: Logbook,
                                                                  tmp_path: Path) -> None:
    ids = _log(book, 6)
    book.add_feedback("m", [1, 0, 1], request_ids=ids[:3])
    book.add_feedback("m", [0], request_ids=[ids[0]])
    book.seal()
    expected = _labels(book)
    os.unlink(book.layout.label_index("m"))  # as an older keepwell left it
    assert _labels(book) == expected == _recount(book)
    book.seal()  # the next seal builds the index
    assert _index(book) is not None and _labels(book) == expected


def test_queries_over_every_model_use_each_models_index(book: Logbook, tmp_path: Path) -> None:
    a, b = _log(book, 3, "a"), _log(book, 3, "b")
    book.add_feedback("a", [1], request_ids=[a[0]])
    book.add_feedback("b", [0, 1], request_ids=b[:2])
    book.seal()
    book.add_feedback("b", [1], request_ids=[b[0]])
    assert _index(book, "a") is not None and _index(book, "b") is not None
    rows = {r[0]: r[1] for r in _labels(book)}
    assert rows == {a[0]: 1, b[0]: 1, b[1]: 1}
    assert _labels(book) == _without_index(book, tmp_path)
