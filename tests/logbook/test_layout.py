"""How sealed Parquet is laid out, and that parts written the older way still read the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from keepwell.logbook import Logbook
from keepwell.logbook.layout import write_parquet_atomic

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_columns_without_nulls_are_required_and_only_text_and_integers_use_dictionaries(
        tmp_path: Path) -> None:
    table = pa.table({"x": [1.5, 2.5, 3.5], "n": [1, 2, 2], "s": ["a", None, "a"],
                      "f": [0.5, None, 1.0]})
    write_parquet_atomic(table, tmp_path / "part.parquet")
    stored = pq.ParquetFile(tmp_path / "part.parquet")
    schema = stored.schema_arrow
    assert [schema.field(c).nullable for c in "xnsf"] == [False, False, True, True]
    encodings = {stored.metadata.row_group(0).column(i).path_in_schema:
                 stored.metadata.row_group(0).column(i).encodings for i in range(4)}
    assert "RLE_DICTIONARY" in encodings["n"] and "RLE_DICTIONARY" in encodings["s"]
    assert "RLE_DICTIONARY" not in encodings["x"] and "RLE_DICTIONARY" not in encodings["f"]
    assert pq.read_table(tmp_path / "part.parquet").to_pylist() == table.to_pylist()


def test_parts_written_the_older_way_read_the_same(book: Logbook) -> None:
    ids = book.append_frame("m", 1, {"x": [float(i) for i in range(6)]},
                            {"prediction": [i % 2 for i in range(6)]},
                            ts=[T0 + timedelta(minutes=i) for i in range(6)])
    book.add_feedback("m", [1, 0], request_ids=ids[:2])
    book.seal()
    book.append_frame("m", 1, {"x": [9.0]}, {"prediction": [1]}, ts=[T0])
    book.seal()
    before = book.predictions("m", with_labels=True)
    parts = sorted((book.root / "sealed").rglob("part-*.parquet"))
    assert len(parts) == 3
    for part in parts[:2]:  # as the previous keepwell wrote them: nullable, default layout
        table = pq.read_table(part)
        nullable = pa.schema([f.with_nullable(True) for f in table.schema])
        pq.write_table(table.cast(nullable), part, compression="zstd", row_group_size=65_536)
        assert pq.ParquetFile(part).schema_arrow.field("request_id").nullable
    after = book.predictions("m", with_labels=True)
    assert after.to_pylist() == before.to_pylist()
    assert after.column("label").to_pylist()[:3] == [1, None, 0]
