"""Label columns: ``predictions_with_labels`` is exactly ``predictions LEFT JOIN labels``
whether a part is read beside its label column or joined by request id; only parts that got
new labels are made again; a stale, damaged or half-made label column is never read; erasure
and retention leave none behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import keepwell.logbook.label_columns as label_columns
from keepwell.logbook import Logbook
from keepwell.logbook.label_columns import build_columns

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UNKNOWN = "01900000-0000-7000-8000-000000000000"
HASHED = """SELECT p.*, l.label, l.label_ts, l.label_count
            FROM predictions p LEFT JOIN labels l USING (request_id)"""


def _log(book: Logbook, n: int, *, model: str = "m", start: datetime = T0,
         features: tuple[str, ...] = ("x",)) -> list[str]:
    return book.append_frame(model, 1, {f: [float(i) for i in range(n)] for f in features},
                             {"prediction": [i % 2 for i in range(n)]},
                             ts=[start + i * MIN for i in range(n)],
                             subjects=[f"s{i % 4}" for i in range(n)])


def _rows(book: Logbook, source: str, model: str | None = None) -> list[dict[str, Any]]:
    """Every row of ``source``, columns by name, in request-id order."""
    table = book.query(f"SELECT * FROM ({source}) ORDER BY request_id", model=model)
    return [dict(sorted(r.items())) for r in table.to_pylist()]


def _same_as_hashed(book: Logbook, model: str | None = None) -> list[dict[str, Any]]:
    rows = _rows(book, "SELECT * FROM predictions_with_labels", model)
    assert rows == _rows(book, HASHED, model)
    return rows


def _beside(book: Logbook, model: str | None = "m") -> int:
    """How many label columns the ``predictions_with_labels`` view of a query about
    ``model`` (None: every model) reads: the product's choice, from the view's own SQL."""
    sql = book.query("SELECT sql FROM duckdb_views() "
                     "WHERE view_name = 'predictions_with_labels'", model=model)
    return int(sql["sql"][0].as_py().count(str(book.layout.root / "label_columns")))


def _manifest(book: Logbook, model: str = "m") -> dict[str, str]:
    manifest = json.loads((book.layout.label_columns(model) / "columns.json").read_text())
    return {e["part"][0]: e["file"] for e in manifest["entries"]}


def _parts(book: Logbook, model: str = "m") -> list[Path]:
    return sorted((book.root / "sealed" / "predictions" / model).glob("*/part-*.parquet"))


@pytest.mark.parametrize("rows_per_query", [label_columns.ROWS_PER_QUERY, 40])
def test_the_view_is_the_join_across_parts_days_schemas_and_models(
        book: Logbook, monkeypatch: pytest.MonkeyPatch, rows_per_query: int) -> None:
    # 40: the parts of 30, 6 (the first day) and 20 rows are made in two queries.
    monkeypatch.setattr(label_columns, "ROWS_PER_QUERY", rows_per_query)
    first = _log(book, 30)
    book.seal()
    # Another schema (a new feature), another day, another model: separate parts.
    second = _log(book, 20, start=T0 + timedelta(days=1), features=("x", "y"))
    other = _log(book, 5, model="n")
    book.seal()
    third = _log(book, 6, start=T0 + 40 * MIN)  # a second part of the first day
    book.add_feedback("m", [1] * 10 + [0] * 5 + [4], request_ids=first[:10] + second[:5]
                      + third[-1:])
    book.add_feedback("m", [7, 8], request_ids=[first[0], UNKNOWN])  # a relabel, an unknown id
    book.add_feedback("n", ["a", "b"], request_ids=other[:2])
    book.seal()
    assert len(_parts(book)) == 3 and _beside(book) == 3 and _beside(book, "n") == 1
    assert _beside(book, None) == 0  # two models' labels: joined by id
    by_model = {r["request_id"]: r for r in _same_as_hashed(book, "m")}
    assert (by_model[first[0]]["label"], by_model[second[4]]["label"]) == (7, 0)
    rows = {r["request_id"]: r for r in _same_as_hashed(book)}
    # Both models in one view: model n's text labels make every label text.
    assert len(rows) == 61 and rows[third[-1]]["label"] == "4"
    assert (rows[first[0]]["label"], rows[first[0]]["label_count"]) == ("7", 2)
    assert rows[first[20]]["label"] is None and rows[second[0]]["y"] == 0.0
    assert rows[other[1]]["label"] == "b"
    assert (rows[second[4]]["x"], rows[second[4]]["label"]) == (4.0, "0")


def test_parts_labelled_since_the_seal_are_joined_by_id_the_others_read_beside(
        book: Logbook) -> None:
    ids = _log(book, 20)
    later = _log(book, 4, start=T0 + timedelta(days=1))
    book.add_feedback("m", [1] * 10 + [1], request_ids=ids[:10] + later[:1])
    book.seal()
    assert _beside(book) == 2
    book.add_feedback("m", [0, 0], request_ids=[ids[3], ids[15]])  # unsealed: fresh
    assert _beside(book) == 1  # the first day's part holds a fresh request
    rows = {r["request_id"]: r for r in _same_as_hashed(book, "m")}
    assert (rows[ids[3]]["label"], rows[ids[3]]["label_count"]) == (0, 2)
    assert rows[ids[15]]["label"] == 0 and rows[later[0]]["label"] == 1
    book.add_feedback("m", ["text"], request_ids=[ids[4]])  # another label type
    assert _beside(book) == 1 and _same_as_hashed(book, "m")
    table = book.predictions("m", with_labels=True)
    assert table.column("label").to_pylist()[3:5] == ["0", "text"]
    assert table.column("label").to_pylist()[20] == "1"  # read beside, cast to text


def test_with_labels_by_subject_every_part_is_joined_by_id(book: Logbook) -> None:
    ids = _log(book, 8)
    book.add_feedback("m", [1], request_ids=[ids[0]])
    book.seal()
    assert _beside(book) == 1
    book.add_feedback("m", [5], subjects=["s1"], event_ts=[T0 + 6 * MIN])
    assert _beside(book) == 0  # which request a subject's label names needs the join
    rows = {r["request_id"]: r for r in _same_as_hashed(book, "m")}
    assert rows[ids[5]]["label"] == 5 and rows[ids[0]]["label"] == 1
    book.seal()
    assert _beside(book) == 0 and _same_as_hashed(book, "m")


def test_only_parts_with_newly_labelled_requests_are_made_again(book: Logbook) -> None:
    old = _log(book, 10)
    book.seal()
    new = _log(book, 10, start=T0 + timedelta(days=1))
    book.add_feedback("m", [1], request_ids=[old[0]])
    book.seal()
    assert _beside(book) == 2
    before = _manifest(book)
    book.add_feedback("m", [0, 1], request_ids=[new[2], UNKNOWN])
    book.seal()
    after = _manifest(book)
    changed = {part for part in before if before[part] != after[part]}
    assert changed == {p.relative_to(book.root).as_posix() for p in _parts(book)
                       if "2024-03-02" in p.parent.name}
    assert sorted(p.name for p in book.layout.label_columns("m").glob("*.parquet")) == sorted(
        after.values())  # the replaced label column is gone
    assert _beside(book) == 2 and _same_as_hashed(book)
    assert build_columns(book.layout, "m") == 0  # up to date


@pytest.mark.parametrize("damage", ["label column", "part"])
def test_a_damaged_or_stale_label_column_is_not_read(book: Logbook, damage: str) -> None:
    ids = _log(book, 12)
    book.add_feedback("m", [1] * 6, request_ids=ids[:6])
    book.seal()
    (part,) = _parts(book)
    (column,) = book.layout.label_columns("m").glob("*.parquet")
    if damage == "label column":  # rows of another part: a wrong alignment if it were read
        pq.write_table(pq.read_table(column).slice(2), column)
    else:  # the part rewritten behind the manifest's back, its first rows gone
        pq.write_table(pq.read_table(part).slice(2), part)
    assert _beside(book) == 0
    rows = _same_as_hashed(book)
    assert [r["label"] for r in rows if r["label"] is not None] == [1] * (
        6 if damage == "label column" else 4)
    assert build_columns(book.layout, "m") == 1 and _beside(book) == 1
    assert _same_as_hashed(book) == rows


def test_a_build_that_fails_half_way_changes_nothing(book: Logbook,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    old = _log(book, 10)
    book.seal()
    new = _log(book, 10, start=T0 + timedelta(days=1))
    book.add_feedback("m", [1], request_ids=[old[0]])
    book.seal()
    before = _manifest(book)
    real, calls = label_columns._write, []

    def failing(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(label_columns, "_write", failing)
    book.add_feedback("m", [0, 1], request_ids=[old[1], new[1]])
    with pytest.raises(OSError, match="disk full"):
        book.seal()
    assert _manifest(book) == before
    assert not list(book.layout.label_columns("m").glob(".tmp-*"))
    rows = _same_as_hashed(book)  # the manifest names an older index: nothing is beside
    assert _beside(book) == 0 and sum(r["label"] is not None for r in rows) == 3
    monkeypatch.setattr(label_columns, "_write", real)
    assert build_columns(book.layout, "m") == 2 and _beside(book) == 2
    assert _same_as_hashed(book) == rows


def test_erasure_leaves_no_label_of_the_subject_in_a_label_column(book: Logbook) -> None:
    ids = _log(book, 8)  # subjects s0..s3, twice each
    book.add_feedback("m", [10 + i for i in range(8)], request_ids=ids)
    book.seal()
    book.erase("s1")  # ids 1 and 5, labels 11 and 15
    assert _beside(book) == 1
    labels = {v for c in book.layout.label_columns("m").glob("*.parquet")
              for v in pq.read_table(c)["label"].to_pylist()}
    assert labels == {10, 12, 13, 14, 16, 17}
    assert len(_same_as_hashed(book)) == 6


def test_retention_removes_the_label_columns_of_deleted_days(book: Logbook) -> None:
    _log(book, 4, start=datetime.now(UTC) - timedelta(days=10))
    recent = _log(book, 4, start=datetime.now(UTC) - timedelta(hours=1))
    book.add_feedback("m", [1], request_ids=[recent[0]])
    book.seal()
    assert _beside(book) == 2
    book.apply_retention(timedelta(days=5))
    assert len(_parts(book)) == 1 and _beside(book) == 1
    assert len(list(book.layout.label_columns("m").glob("*.parquet"))) == 1
    assert [r["label"] for r in _same_as_hashed(book)].count(1) == 1


def test_models_whose_names_differ_by_a_suffix_keep_their_label_files_apart(
        book: Logbook) -> None:
    ids = {name: _log(book, 4, model=name) for name in ("m", "m.parquet")}
    for name in ids:
        book.add_feedback(name, [1, 0], request_ids=ids[name][:2])
    book.seal()
    assert _beside(book, "m") == 1 and _beside(book, "m.parquet") == 1
    book.erase("s0")
    book.seal()
    for name in ids:
        assert book.predictions(name, with_labels=True)["label"].to_pylist() == [0, None, None]


def test_a_label_logged_under_another_model_is_seen_as_by_the_join(book: Logbook) -> None:
    m, n = _log(book, 4), _log(book, 4, model="n")
    book.add_feedback("m", [1], request_ids=[m[0]])
    book.add_feedback("n", [1, 5], request_ids=[n[0], m[1]])  # m's request, under n
    book.seal()
    rows = {r["request_id"]: r["label"] for r in _same_as_hashed(book)}
    assert rows[m[1]] == 5


def test_label_columns_made_before_the_label_type_changed_read_as_the_join(
        book: Logbook) -> None:
    first = _log(book, 4)
    book.add_feedback("m", [1], request_ids=[first[0]])
    book.seal()
    second = _log(book, 4, start=T0 + timedelta(days=1))
    book.add_feedback("m", ["text"], request_ids=[second[0]])
    book.seal()
    assert _beside(book) == 2
    day = book.predictions("m", end=T0 + timedelta(days=1), with_labels=True)
    joined = book.query(f"{HASHED} WHERE p.ts < ? ORDER BY p.ts",
                        [T0 + timedelta(days=1)])
    assert day["label"].to_pylist() == joined["label"].to_pylist() == ["1", None, None, None]
    view = book.query("SELECT * FROM predictions_with_labels LIMIT 0")
    assert view.column_names == joined.column_names  # the join's columns, in its order


def test_files_a_crashed_builder_left_are_removed_by_the_next(book: Logbook) -> None:
    ids = _log(book, 4)
    book.add_feedback("m", [1], request_ids=[ids[0]])
    book.seal()
    folder = book.layout.label_columns("m")
    for name in ("2024-03-01-part-gone-0123456789ab.parquet", ".columns.json.tmp-1"):
        (folder / name).write_bytes(b"left behind")
    assert build_columns(book.layout, "m") == 0 and _beside(book) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*_manifest(book).values(), "columns.json"])
