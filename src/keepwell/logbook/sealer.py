"""Sealing: segments that no writer holds become Parquet files, one per model and day."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from keepwell._files import touch_private
from keepwell.logbook.erasure import Tombstones
from keepwell.logbook.label_columns import build_columns
from keepwell.logbook.labels import build_index
from keepwell.logbook.layout import KINDS, LogLayout, sync_dir, write_parquet_atomic
from keepwell.logbook.segments import read_segment, try_lock
from keepwell.logbook.staging import remove_abandoned

__all__ = ["SealReport", "seal"]

TIME_COLUMN = {"predictions": "ts", "feedback": "received_ts"}


@dataclass(frozen=True)
class SealReport:
    segments: int = 0
    rows: int = 0
    files: int = 0
    torn_tails: int = 0

    def __add__(self, other: SealReport) -> SealReport:
        return SealReport(self.segments + other.segments, self.rows + other.rows,
                          self.files + other.files, self.torn_tails + other.torn_tails)


def _seal_segment(layout: LogLayout, kind: str, model: str, path: Path,
                  tombstones: Tombstones) -> SealReport:
    contents = read_segment(path)
    torn = int(contents.torn_tail)
    if contents.schema is None or not contents.batches:
        table = None
    else:
        table = tombstones.drop_erased(kind, pa.Table.from_batches(contents.batches))
    files = 0
    if table is not None and table.num_rows:
        days = pc.cast(pc.cast(table[TIME_COLUMN[kind]], pa.timestamp("us")), pa.date32())
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            write_parquet_atomic(part, layout.sealed_dir(kind, model, day) /
                                 f"part-{path.stem}.parquet")
            files += 1
    marker = path.with_suffix(".sealed")
    with layout.lock(exclusive=True):
        touch_private(marker)
        sync_dir(path.parent)
        path.unlink()
        marker.unlink()
        sync_dir(path.parent)
    return SealReport(1, table.num_rows if table is not None else 0, files, torn)


def seal(layout: LogLayout, tombstones: Tombstones) -> SealReport:
    """Seal every segment that no live writer holds (closed ones, and those of dead writers).

    A segment left by a crashed writer is sealed from its valid prefix: a torn last frame,
    never acknowledged, is dropped (``torn_tails`` counts them). Sealing again after a crash
    half-way rewrites the same part names, so nothing is duplicated. Then each model's label
    index is brought up to date with its sealed feedback (:mod:`keepwell.logbook.labels`), and
    its label columns with the index (:mod:`keepwell.logbook.label_columns`).
    """
    report = SealReport()
    for kind in KINDS:
        for model in layout.models(kind):
            seg_dir = layout.segment_dir(kind, model)
            if seg_dir.is_dir():
                remove_abandoned(seg_dir)  # staged by jobs that crashed
            for marker in seg_dir.glob("*.sealed"):
                # A crash after the marker: the Parquet is complete, finish the commit.
                with layout.lock(exclusive=True):
                    marker.with_suffix(".seg").unlink(missing_ok=True)
                    marker.unlink(missing_ok=True)
            for path in sorted(seg_dir.glob("*.seg")):
                fd = try_lock(path)
                if fd is None:
                    continue  # a live writer holds it
                try:
                    report += _seal_segment(layout, kind, model, path, tombstones)
                finally:
                    os.close(fd)
    for model in layout.models("feedback"):
        build_index(layout, model)  # a no-op when the index already covers every part
    for model in layout.models("predictions"):
        build_columns(layout, model)  # label columns of new parts, and of newly labelled ones
    return report
