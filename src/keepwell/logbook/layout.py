"""Where the logbook keeps things, and which files a reader may see.

::

    <root>/segments/<kind>/<model>/<segment>.seg       open or unsealed segments
    <root>/segments/<kind>/<model>/<segment>.sealed    marker: this segment's Parquet is complete
    <root>/sealed/<kind>/<model>/<YYYY-MM-DD>/part-<segment>.parquet
    <root>/labels/<model>.parquet                      sealed feedback, one label per request
    <root>/label_columns/<model>/columns.json, *.parquet   each sealed prediction part's labels
    <root>/erasures/<sha256 of subject>.json           what an erasure removed, and when
    <root>/.lock                                       readers share it; sealing commits hold it

Sealing a segment writes its Parquet parts first (invisible: the segment still exists and has no
marker), then, holding ``.lock`` exclusively, creates the marker, deletes the segment and deletes
the marker. A reader holding ``.lock`` shared sees a segment when it has no marker, and a part
when its segment is gone or marked: every record exactly once, whatever the moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from keepwell._files import make_private_dir, seal_private

__all__ = ["KINDS", "LogLayout", "sync_dir", "write_atomic", "write_parquet_atomic"]

KINDS = ("predictions", "feedback")


@dataclass(frozen=True)
class Snapshot:
    """The files of one kind a reader may see, under a shared lock."""

    parquet: list[Path]
    segments: list[Path]


class LogLayout:
    """Paths and locks of a logbook folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def segment_dir(self, kind: str, model: str) -> Path:
        return self.root / "segments" / kind / model

    def sealed_dir(self, kind: str, model: str, day: date) -> Path:
        return self.root / "sealed" / kind / model / day.isoformat()

    def label_index(self, model: str) -> Path:
        """The model's feedback compacted to one label per request (see
        :mod:`keepwell.logbook.labels`)."""
        return self.root / "labels" / f"{model}.parquet"

    def label_columns(self, model: str) -> Path:
        """The folder of the model's label columns (see
        :mod:`keepwell.logbook.label_columns`)."""
        return self.root / "label_columns" / model

    @property
    def erasures(self) -> Path:
        return self.root / "erasures"

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        make_private_dir(self.root)
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def models(self, kind: str) -> list[str]:
        names: set[str] = set()
        for base in (self.root / "segments" / kind, self.root / "sealed" / kind):
            if base.is_dir():
                names.update(p.name for p in base.iterdir() if p.is_dir())
        return sorted(names)

    def snapshot(self, kind: str, model: str | None = None, first_day: date | None = None,
                 last_day: date | None = None) -> Snapshot:
        """Visible files (call while holding :meth:`lock`)."""
        models = [model] if model is not None else self.models(kind)
        parquet: list[Path] = []
        segments: list[Path] = []
        for name in models:
            seg_dir = self.segment_dir(kind, name)
            present = {p.stem for p in seg_dir.glob("*.seg")} if seg_dir.is_dir() else set()
            marked = {p.stem for p in seg_dir.glob("*.sealed")} if seg_dir.is_dir() else set()
            segments.extend(seg_dir / f"{stem}.seg" for stem in sorted(present - marked))
            sealed = self.root / "sealed" / kind / name
            if not sealed.is_dir():
                continue
            for day_dir in sorted(sealed.iterdir()):
                day = _parse_day(day_dir.name)
                if day is None or (first_day and day < first_day) or (last_day and day > last_day):
                    continue
                for part in sorted(day_dir.glob("part-*.parquet")):
                    stem = part.stem.removeprefix("part-")
                    if stem not in present or stem in marked:
                        parquet.append(part)
        return Snapshot(parquet, segments)


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def write_parquet_atomic(table: pa.Table, target: Path) -> None:
    """Write ``table`` to ``target`` through a synced temporary file and a rename.

    Laid out for DuckDB to read fast: a column without nulls is stored as required (no
    definition levels to decode), only text and integer columns are dictionary-encoded (a
    dictionary of random floats or ids is abandoned half-way, after costing its time), and
    row groups are 122,880 rows, a multiple of DuckDB's vector size (small enough that a
    window read decodes little beyond what it asks for).
    """
    schema = pa.schema([field.with_nullable(table.column(i).null_count > 0)
                        for i, field in enumerate(table.schema)], metadata=table.schema.metadata)
    stored = pa.Table.from_arrays(table.columns, schema=schema)
    dictionary = [f.name for f in schema if pa.types.is_string(f.type)
                  or pa.types.is_large_string(f.type) or pa.types.is_integer(f.type)]
    write_atomic(target, lambda tmp: pq.write_table(
        stored, tmp, compression="zstd", row_group_size=122_880, use_dictionary=dictionary))


def write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Have ``write`` fill a temporary file beside ``target``, then sync it, make it private
    and rename it over ``target`` (and sync the folder): readers see the old file or the whole
    new one."""
    make_private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        seal_private(tmp)
        os.replace(tmp, target)
        sync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
