"""Erasure of one subject's records, and the tombstones that keep unsealed data in step.

Sealed Parquet files holding the subject are rewritten without its rows (atomically: a synced
temporary file renamed over the old one). Segments still being written cannot be rewritten, so
an erasure also leaves a tombstone, ``erasures/<sha256(subject)>.json``, holding the time of
the erasure and the request ids it removed. Readers drop tombstoned rows of unsealed segments,
and sealing drops them for good. Only the records that existed at the erasure are affected: a
new prediction about the same subject afterwards is kept. Tombstones name the subject by its
sha256, never in clear.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from keepwell._files import make_private_dir
from keepwell.logbook.label_columns import build_columns
from keepwell.logbook.labels import build_index, drop_index
from keepwell.logbook.layout import LogLayout, sync_dir, write_parquet_atomic
from keepwell.logbook.segments import read_segment

__all__ = ["ErasureReport", "Tombstones", "erase_subject", "subject_hash"]


def subject_hash(subject: str) -> str:
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ErasureReport:
    """What :func:`erase_subject` removed."""

    subject_sha256: str
    predictions: int = 0
    feedback: int = 0
    files_rewritten: int = 0
    request_ids: tuple[str, ...] = field(default=(), repr=False)


class Tombstones:
    """The erasures recorded in a logbook, for filtering rows not yet sealed."""

    def __init__(self, layout: LogLayout) -> None:
        self._erased_at: dict[str, datetime] = {}
        self._request_ids: set[bytes] = set()
        if layout.erasures.is_dir():
            for path in layout.erasures.glob("*.json"):
                data = json.loads(path.read_text(encoding="utf-8"))
                self._erased_at[path.stem] = datetime.fromisoformat(data["erased_at"])
                self._request_ids.update(bytes.fromhex(r) for r in data["request_ids"])

    def __bool__(self) -> bool:
        return bool(self._erased_at)

    def drop_erased(self, kind: str, table: pa.Table) -> pa.Table:
        """``table`` without the rows that an erasure covers.

        Predictions go by the request ids the erasure found (so a prediction logged after it
        stays, whatever time it carries); labels go by those ids too, and by subject when
        received before the erasure (``received_ts`` is the logbook's own clock).
        """
        if not self._erased_at or table.num_rows == 0:
            return table
        ids = _id_bytes(table["request_id"])
        keep = [i is None or i not in self._request_ids for i in ids]
        if kind == "feedback":
            for row, (subject, received) in enumerate(zip(
                    table["subject"].to_pylist(), table["received_ts"].to_pylist(),
                    strict=True)):
                erased_at = self._erased_at.get(subject_hash(subject)) if subject else None
                if erased_at is not None and received <= erased_at:
                    keep[row] = False
        return table.filter(pa.array(keep, type=pa.bool_()))


def _id_bytes(column: pa.ChunkedArray | pa.Array) -> list[bytes | None]:
    """Request ids (Arrow ``uuid``) as 16-byte values."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return list(array.storage.to_pylist())


def _rewrite_without(path: Path, mask: pa.ChunkedArray | pa.Array) -> int:
    """Rewrite a Parquet file without the rows where ``mask`` is true; rows removed."""
    table = pq.read_table(path)
    kept = table.filter(pc.invert(pc.fill_null(mask, False)))
    removed = int(table.num_rows - kept.num_rows)
    if removed and kept.num_rows:
        write_parquet_atomic(kept, path)
    elif removed:
        path.unlink()
    return removed


def _write_tombstone(layout: LogLayout, digest: str, erased_at: datetime,
                     ids: set[bytes]) -> None:
    make_private_dir(layout.erasures)
    path = layout.erasures / f"{digest}.json"
    earlier = json.loads(path.read_text())["request_ids"] if path.exists() else []
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"erased_at": erased_at.isoformat(),
                               "request_ids": sorted({*earlier, *(i.hex() for i in ids)})}))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    sync_dir(path.parent)


def erase_subject(layout: LogLayout, subject: str) -> ErasureReport:
    """Remove every record about ``subject``, sealed or not, from predictions and feedback."""
    digest = subject_hash(subject)
    erased_at = datetime.now(UTC)
    with layout.lock(exclusive=True):
        indexed: list[str] = []  # models whose label index is dropped, to rebuild at the end
        predictions = layout.snapshot("predictions")
        feedback = layout.snapshot("feedback")
        ids: set[bytes] = set()
        unsealed_predictions = 0
        for path in predictions.parquet:
            table = pq.read_table(path, columns=["request_id", "subject"])
            ids.update(i for i in _id_bytes(table.filter(
                pc.equal(table["subject"], subject))["request_id"]) if i is not None)
        for path in predictions.segments:
            for batch in read_segment(path).batches:
                hits = batch.filter(pc.equal(batch["subject"], subject))
                unsealed_predictions += hits.num_rows
                ids.update(i for i in _id_bytes(hits["request_id"]) if i is not None)
        # The tombstone first: from here on, readers skip this subject's unsealed rows.
        _write_tombstone(layout, digest, erased_at, ids)
        id_values = pa.array(sorted(ids), type=pa.binary(16))

        def feedback_mask(table: pa.Table | pa.RecordBatch) -> pa.Array:
            column = table["request_id"]
            storage = (column.combine_chunks() if isinstance(column, pa.ChunkedArray)
                       else column).storage
            return pc.or_(pc.fill_null(pc.equal(table["subject"], subject), False),
                          pc.is_in(storage, value_set=id_values))

        unsealed_feedback = sum(pc.sum(feedback_mask(batch)).as_py() or 0
                                for path in feedback.segments
                                for batch in read_segment(path).batches)
        removed_predictions = removed_feedback = files = 0
        for path in predictions.parquet:
            subjects = pq.read_table(path, columns=["subject"])["subject"]
            removed = _rewrite_without(path, pc.equal(subjects, subject))
            removed_predictions += removed
            files += removed > 0
        for path in feedback.parquet:
            table = pq.read_table(path, columns=["subject", "request_id"])
            mask = feedback_mask(table)
            model = path.parent.parent.name
            if pc.any(mask).as_py() and model not in indexed and drop_index(layout, model):
                # The index holds labels compacted from this part: it goes before the part
                # changes, so that no erased label survives in it, even after a crash.
                indexed.append(model)
            removed = _rewrite_without(path, mask)
            removed_feedback += removed
            files += removed > 0
    for model in indexed:
        build_index(layout, model)
    for model in layout.models("predictions"):
        build_columns(layout, model)  # of the parts rewritten, and all of a dropped index's
    return ErasureReport(digest, removed_predictions + unsealed_predictions,
                         removed_feedback + unsealed_feedback, files,
                         tuple(i.hex() for i in sorted(ids)))
