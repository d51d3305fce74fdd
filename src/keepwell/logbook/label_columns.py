"""Label columns: each sealed prediction part's labels, stored beside it row by row.

Joining predictions to their labels by request id is a hash join of every prediction against
every label: for a day of 10M predictions and 3M labels, DuckDB spends most of a query's time
probing a table of random 16-byte keys. A sealed prediction part never changes (an erasure
makes a new file), so its labels can be looked up once and kept as a *label column*: a small
Parquet file with exactly the part's rows, in the part's order, holding ``label``,
``label_ts``, ``label_count`` and the winning ``feedback_id`` (all null for a row with no
label). The ``predictions_with_labels`` view (:mod:`keepwell.logbook.reader`) then puts each
part and its label column side by side (DuckDB's ``POSITIONAL JOIN``): no key is hashed.

Label columns are made from the label index (:mod:`keepwell.logbook.labels`) and, like it, are a
cache, never the record. ``label_columns/<model>/columns.json`` lists them: for each part its
fingerprint (path, size, modification time, inode), its label column's file and size, and the
smallest and greatest request id in the part; and, for the whole list, the fingerprints of
the sealed feedback parts the label index was made from. A reader uses a label column only
while the manifest names exactly the feedback of the current label index, the part is
unchanged and the label column has its listed size; every other part (sealed since, rewritten
by an erasure, a manifest left behind by a newer index) is joined by request id as before. The
feedback the index does not hold yet (sealed since, unsealed) is merged over the label columns
at query time, by the same latest-wins rule as the ``labels`` view.

When the index grows, only the label columns of parts that may hold a newly labelled request
are made again: those whose request-id range takes in one of the new labels' ids (UUIDv7 ids
are made in time order, so a part's range is narrow). The others are still exact: no new
label is for one of their requests. The new label columns are written and synced first, then
the manifest replaces the old one under the logbook's exclusive lock, and only if the index and
every part are still as they were read; unlisted files are deleted then, so no reader is using
them. Erasure and retention drop the label columns with the index, before any part changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from keepwell._files import make_private_dir, seal_private
from keepwell.logbook.labels import LabelIndex, files, fingerprint, quote, read_index
from keepwell.logbook.layout import LogLayout, sync_dir, write_atomic

__all__ = ["LabelColumn", "build_columns", "read_columns"]

_VERSION = 1
MANIFEST = "columns.json"


@dataclass(frozen=True)
class _Entry:
    """A part's label column, as the manifest lists it."""

    part: list[Any]  # the part's fingerprint
    file: str  # the label column's file name, in the model's label folder
    size: int
    first_id: str  # the part's smallest and greatest request id, as text
    last_id: str

    def may_hold(self, ids: np.ndarray) -> bool:
        """Whether one of ``ids`` (request ids as text, sorted) is in the part's range."""
        first = np.searchsorted(ids, self.first_id, side="left")
        return bool(np.searchsorted(ids, self.last_id, side="right") > first)


@dataclass(frozen=True)
class LabelColumn:
    """A valid label column: its file, and its manifest entry."""

    path: Path
    entry: _Entry

    def may_hold(self, ids: np.ndarray) -> bool:
        return self.entry.may_hold(ids)


def _read_manifest(layout: LogLayout, model: str) -> dict[str, Any] | None:
    try:
        manifest = json.loads((layout.label_columns(model) / MANIFEST).read_text())
    except (FileNotFoundError, ValueError, OSError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("version") == _VERSION else None


def _entries(manifest: dict[str, Any]) -> dict[str, _Entry]:
    return {e["part"][0]: _Entry(**e) for e in manifest["entries"]}


def read_columns(layout: LogLayout, model: str, index: LabelIndex, parts: list[Path]
                 ) -> dict[Path, LabelColumn]:
    """The label column of each of ``parts`` (sealed prediction parts of ``model``) that has a
    valid one; call under the lock, with the model's current valid ``index``."""
    manifest = _read_manifest(layout, model)
    if manifest is None or set(map(tuple, manifest["index"])) != index.fingerprints:
        return {}
    folder = layout.label_columns(model)
    entries = _entries(manifest)
    found: dict[Path, LabelColumn] = {}
    for part in parts:
        entry = entries.get(part.relative_to(layout.root).as_posix())
        if entry is not None and _valid(layout, folder, part, entry):
            found[part] = LabelColumn(folder / entry.file, entry)
    return found


def build_columns(layout: LogLayout, model: str) -> int:
    """Bring the model's label columns up to date with its label index; how many were made.

    A no-op without a valid index. One builder per model at a time (a lock file beside the
    model's folder, which erasure may delete). Label columns are computed under the shared
    lock into temporary files; under the exclusive lock, only if the index and the parts are
    still those they were made from, they take their names and the manifest naming them
    replaces the old one (else the work is dropped: a later seal does it again).
    """
    if not layout.label_index(model).exists():
        return 0  # no index yet: nothing to make label columns from
    folder = layout.label_columns(model)
    made: list[_Entry] = []
    with _build_lock(folder):
        make_private_dir(folder)
        for path in folder.glob(".tmp-*"):
            path.unlink(missing_ok=True)  # left by a builder that crashed
        try:
            with layout.lock(exclusive=False):
                index = read_index(layout, model, layout.snapshot("feedback", model).parquet)
                if index is None:
                    return 0
                parts = layout.snapshot("predictions", model).parquet
                entries, new_ids, current = _kept_entries(layout, model, index)
                stale = []
                for part in parts:
                    kept = entries.get(part.relative_to(layout.root).as_posix())
                    if (kept is None or new_ids is None or kept.may_hold(new_ids)
                            or not _valid(layout, folder, part, kept)):
                        stale.append(part)
                _make(layout, folder, stale, index, made)
                entries.update((e.part[0], e) for e in made)
            live = {p.relative_to(layout.root).as_posix() for p in parts}
            listed = [e for key, e in sorted(entries.items()) if key in live]
            keep = {e.file for e in listed} | {MANIFEST}
            if current and not made and len(listed) == len(entries) and all(
                    p.name in keep for p in folder.iterdir()):
                return 0  # up to date, and nothing left behind by a crash
            return len(made) if _publish(layout, model, index, made, listed) else 0
        finally:
            for entry in made:  # unless published: the index or a part changed meanwhile
                (folder / f".tmp-{entry.file}").unlink(missing_ok=True)


def _publish(layout: LogLayout, model: str, index: LabelIndex, made: list[_Entry],
             listed: list[_Entry]) -> bool:
    """Name the new label columns and put their manifest in place, under the exclusive lock,
    if the index and the parts are still those they were made from; whether it was done."""
    folder = layout.label_columns(model)
    manifest = {"version": _VERSION, "index": sorted(map(list, index.fingerprints)),
                "entries": [dataclasses.asdict(e) for e in listed]}
    with layout.lock(exclusive=True):
        now = read_index(layout, model, layout.snapshot("feedback", model).parquet)
        if (now is None or now.fingerprints != index.fingerprints
                or any(_changed(layout, e.part) for e in listed)):
            return False
        for entry in made:
            os.replace(folder / f".tmp-{entry.file}", folder / entry.file)
        sync_dir(folder)
        text = json.dumps(manifest, separators=(",", ":"))
        write_atomic(folder / MANIFEST, lambda tmp: _write_text(tmp, text))
        keep = {e.file for e in listed} | {MANIFEST}
        for path in folder.iterdir():
            if path.name not in keep:  # replaced, of a part that is gone, or left by a crash
                path.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    make_private_dir(folder.parent)
    fd = os.open(folder.parent / f".{folder.name}.build", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _valid(layout: LogLayout, folder: Path, part: Path, entry: _Entry) -> bool:
    """Whether ``entry`` is the label column of ``part`` as it is, with its listed size."""
    try:
        return (fingerprint(layout, part) == entry.part
                and (folder / entry.file).stat().st_size == entry.size)
    except FileNotFoundError:
        return False


def _kept_entries(layout: LogLayout, model: str, index: LabelIndex
                  ) -> tuple[dict[str, _Entry], np.ndarray | None, bool]:
    """The current manifest's entries, if it was made from part of the index's feedback; the
    request ids (sorted text) labelled by the rest of it, or None (make every label column
    again); and whether it was made from all of it."""
    manifest = _read_manifest(layout, model)
    if manifest is None:
        return {}, None, False
    made_from = set(map(tuple, manifest["index"]))
    if not made_from <= index.fingerprints:
        return {}, None, False  # feedback it was made from was rewritten or removed
    added = [layout.root / fp[0] for fp in index.fingerprints - made_from]
    if not added:
        return _entries(manifest), np.array([], dtype=object), True
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        rows = con.execute(
            f"SELECT DISTINCT request_id::VARCHAR FROM read_parquet({files(added)}, "  # noqa: S608
            "union_by_name = true) WHERE request_id IS NOT NULL ORDER BY 1").fetchall()
    finally:
        con.close()
    return _entries(manifest), np.array([r[0] for r in rows], dtype=object), False


def _make(layout: LogLayout, folder: Path, parts: list[Path], index: LabelIndex,
          made: list[_Entry]) -> None:
    """Write the label columns of ``parts`` to temporary files (synced, private), adding
    their entries to ``made`` as they are written.

    One query joins many parts to the index at once (a query per part would read the index
    each time): parts are taken in groups of about :data:`ROWS_PER_QUERY` rows, and each
    group's result, in part and row order, is cut into one file per part.
    """
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        for group in _groups(parts):
            source = (f"read_parquet({files(group)}, file_row_number = true, "
                      "union_by_name = true)")
            labels = con.sql(
                f"SELECT p.file_index, l.label, l.label_ts, l.label_count, l.feedback_id "  # noqa: S608
                f"FROM {source} p LEFT JOIN read_parquet({quote(str(index.path))}) l "
                f"USING (request_id) ORDER BY p.file_index, p.file_row_number").to_arrow_table()
            ranges = {i: (first, last, count) for i, first, last, count in con.execute(
                f"SELECT file_index, min(request_id::VARCHAR), max(request_id::VARCHAR), "  # noqa: S608
                f"count(*) FROM {source} GROUP BY file_index").fetchall()}
            offset = 0
            for i, part in enumerate(group):
                first, last, count = ranges.get(i, ("", "", 0))
                piece = labels.slice(offset, count)
                offset += count
                if count and set(piece["file_index"].unique().to_pylist()) != {i}:
                    raise RuntimeError(f"the labels of {part} came out of order")
                made.append(_write(layout, folder, part, piece.drop_columns(["file_index"]),
                                   first, last))
            if offset != labels.num_rows:
                raise RuntimeError("the label columns do not add up to their parts' rows")
    finally:
        con.close()


ROWS_PER_QUERY = 4_000_000


def _groups(parts: list[Path]) -> Iterator[list[Path]]:
    """``parts`` in groups of at most about :data:`ROWS_PER_QUERY` rows (one part may be
    more)."""
    group: list[Path] = []
    rows = 0
    for part in parts:
        n = pq.read_metadata(part).num_rows
        if group and rows + n > ROWS_PER_QUERY:
            yield group
            group, rows = [], 0
        group.append(part)
        rows += n
    if group:
        yield group


def _write(layout: LogLayout, folder: Path, part: Path, labels: pa.Table, first_id: str,
           last_id: str) -> _Entry:
    """One part's label column, in a temporary file the builder names under the exclusive
    lock, with the manifest."""
    name = f"{part.parent.name}-{part.stem}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = folder / f".tmp-{name}"
    try:
        pq.write_table(labels, tmp, compression="zstd")
        seal_private(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _Entry(fingerprint(layout, part), name, tmp.stat().st_size, first_id, last_id)


def _changed(layout: LogLayout, part: list[Any]) -> bool:
    try:
        return fingerprint(layout, layout.root / part[0]) != part
    except FileNotFoundError:
        return True


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)
