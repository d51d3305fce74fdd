"""The label index: sealed feedback compacted to one label per request id.

The ``labels`` view (:mod:`keepwell.logbook.reader`) gives one label per request: the latest
received wins. Computed from raw feedback, that is a GROUP BY over every label ever received,
paid again by every query that joins labels. So whenever sealing adds feedback, the logbook
also writes ``labels/<model>.parquet``: one row per request id with the label that wins, its
``feedback_id``, the time of the latest label (``label_ts``) and the number of
labels (``label_count``). These four merge associatively (arg_max by ``feedback_id``, max,
max, sum), so a later label merges into an indexed one exactly as into raw rows, and the view
stays what it was: an index row stands for the raw rows it was made from.

The index is a cache, never the record. Its Parquet metadata lists the sealed feedback parts it
was made from (path, size, modification time, inode), and a reader uses it only while every
one of them is there unchanged; the parts it does not list (sealed since) and the unsealed
segments are read as raw feedback and merged in (see :func:`labels_sql`). It is computed under
the shared lock and put in place under the exclusive one (so it never changes under a query)
only if the parts it was made from are still unchanged. A crash while writing it, a seal that
did not update it, or two processes racing to replace it can make a query slower, never wrong.
Erasure and retention delete it, under the exclusive lock and before they change any part, so
that no erased label outlives the erasure in it; it is rebuilt after.

Without an index (a logbook sealed by an older keepwell, or before the first seal of feedback)
the ``labels`` view is computed from the raw feedback as before; the next seal writes one.

Labels given by subject (no request id) are not in the index: their request is found at query
time (an ASOF join with the predictions). The index counts them in ``subject_rows``, so a
reader reads the raw parts for them only when there are some.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from keepwell._files import make_private_dir, seal_private
from keepwell.logbook.layout import LogLayout, sync_dir

__all__ = ["LabelIndex", "build_index", "drop_index", "files", "fingerprint",
           "fresh_labels_sql", "labels_sql", "quote", "read_index"]

_META_KEY = b"keepwell.label_index"
_VERSION = 1

# Raw feedback rows in the index's shape: each label counts once.
_RAW = ("SELECT request_id, label, received_ts AS label_ts, 1::BIGINT AS label_count, "
        "feedback_id FROM {source} WHERE request_id IS NOT NULL")
_INDEXED = "SELECT request_id, label, label_ts, label_count, feedback_id FROM {source}"
# Merging rows of the index's shape: the latest received label wins.
_MERGE = """
SELECT request_id, arg_max(label, feedback_id) AS label, max(label_ts) AS label_ts,
       sum(label_count)::BIGINT AS label_count, max(feedback_id) AS feedback_id
FROM ({rows}) GROUP BY request_id
"""


@dataclass(frozen=True)
class LabelIndex:
    """A valid index: its file, the parts it covers, and the subject labels in them."""

    path: Path
    parts: frozenset[Path]
    subject_rows: int
    fingerprints: frozenset[tuple[Any, ...]]  # of the parts, as when it was made


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def files(paths: list[Path]) -> str:
    return "[" + ", ".join(quote(str(p)) for p in paths) + "]"


def fingerprint(layout: LogLayout, part: Path) -> list[object]:
    """What identifies a part's content: a rewrite (erasure) makes a new file."""
    info = part.stat()
    return [part.relative_to(layout.root).as_posix(), info.st_size, info.st_mtime_ns,
            info.st_ino]


def _covers(layout: LogLayout, manifest: dict[str, Any], parts: list[Path]) -> set[Path] | None:
    """The parts among ``parts`` that the manifest lists, when every part it lists is there
    unchanged; None otherwise."""
    visible = {p.relative_to(layout.root).as_posix(): p for p in parts}
    covered = set()
    for listed in manifest["parts"]:
        part = visible.get(listed[0])
        try:
            if part is None or fingerprint(layout, part) != listed:
                return None
        except FileNotFoundError:
            return None
        covered.add(part)
    return covered


def read_index(layout: LogLayout, model: str, parts: list[Path]) -> LabelIndex | None:
    """The model's index if it is valid for ``parts`` (the visible sealed feedback parts of
    the model): every part it covers is among them, unchanged. Call under the lock, which
    keeps the index file as it is until released."""
    path = layout.label_index(model)
    try:
        metadata = pq.read_metadata(path).metadata or {}
        manifest = json.loads(metadata[_META_KEY])
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None
    if manifest.get("version") != _VERSION:
        return None
    covered = _covers(layout, manifest, parts)
    if covered is None:
        return None
    return LabelIndex(path, frozenset(covered), int(manifest["subject_rows"]),
                      frozenset(map(tuple, manifest["parts"])))


def build_index(layout: LogLayout, model: str) -> bool:
    """Bring the model's index up to date with its sealed feedback; whether it was written.

    The new index is computed under the shared lock (no part changes meanwhile; a valid older
    index is merged with the parts sealed since, rather than every part being read again) into
    a synced temporary file, which replaces the index under the exclusive lock, so that no
    reader sees the index change during a query, and only if every part it covers is still
    there unchanged (an erasure or retention in between makes it stale: it is dropped).
    """
    target = layout.label_index(model)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with layout.lock(exclusive=False):
            parts = layout.snapshot("feedback", model).parquet
            manifest = _compute(layout, model, parts, tmp) if parts else None
            if manifest is None and (parts or not layout.label_index(model).exists()):
                return False  # up to date (or nothing to index, and no index)
        with layout.lock(exclusive=True):
            if manifest is None:
                return drop_index(layout, model)  # no sealed feedback left
            if _covers(layout, manifest, layout.snapshot("feedback", model).parquet) is None:
                return False
            os.replace(tmp, target)
            sync_dir(target.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _compute(layout: LogLayout, model: str, parts: list[Path], tmp: Path
             ) -> dict[str, Any] | None:
    """Write the index over ``parts`` to ``tmp`` (synced, private); its manifest, or None when
    the current index is up to date."""
    old = read_index(layout, model, parts)
    new_parts = [p for p in parts if old is None or p not in old.parts]
    if old is not None and not new_parts:
        return None
    source = f"read_parquet({files(new_parts)}, union_by_name = true)"
    rows = [_RAW.format(source=source)]
    if old is not None:
        rows.append(_INDEXED.format(source=f"read_parquet({quote(str(old.path))})"))
    manifest: dict[str, Any] = {"version": _VERSION,
                                "parts": [fingerprint(layout, p) for p in parts]}
    make_private_dir(tmp.parent)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        found = con.execute(f"SELECT count(*) FROM {source} "  # noqa: S608
                            "WHERE request_id IS NULL AND subject IS NOT NULL").fetchone()
        manifest["subject_rows"] = (old.subject_rows if old else 0) + int(
            found[0] if found else 0)
        text = json.dumps(manifest, separators=(",", ":"))
        con.execute(f"COPY ({_MERGE.format(rows=' UNION ALL '.join(rows))}) "
                    f"TO {quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd, "
                    f"KV_METADATA {{'{_META_KEY.decode()}': {quote(text)}}})")
    finally:
        con.close()
    seal_private(tmp)
    return manifest


def drop_index(layout: LogLayout, model: str) -> bool:
    """Delete the model's index and the label columns made from it (call under the exclusive
    lock); whether there was an index."""
    columns = layout.label_columns(model)
    if columns.is_dir():
        shutil.rmtree(columns)
    try:
        layout.label_index(model).unlink()
    except FileNotFoundError:
        return False
    return True


def fresh_labels_sql(fresh_source: str, subject_source: str | None) -> str:
    """The statement making the ``_fresh_labels`` view: raw feedback merged per request, in
    the index's shape.

    ``fresh_source`` yields raw feedback rows; ``subject_source`` the raw feedback in which
    to look for labels given by subject, which go to that subject's latest prediction at or
    before the label's time (None: there are none).
    """
    rows = _RAW.format(source=fresh_source)
    if subject_source is not None:
        rows += f"""
    UNION ALL
    SELECT p.request_id, f.label, f.received_ts, 1::BIGINT, f.feedback_id
    FROM (SELECT * FROM {subject_source}
          WHERE request_id IS NULL AND subject IS NOT NULL) f
    ASOF JOIN (SELECT request_id, model, subject, ts FROM predictions
               WHERE subject IS NOT NULL) p
    ON f.model = p.model AND f.subject = p.subject AND f.event_ts >= p.ts"""  # noqa: S608
    return f"CREATE TEMP VIEW _fresh_labels AS {_MERGE.format(rows=rows)}"


def labels_sql(index_source: str, fresh_source: str, subject_source: str | None) -> list[str]:
    """The statements making the ``labels`` view over an index and the feedback it does not
    hold (``_fresh_labels``, see :func:`fresh_labels_sql`): index rows no fresh label touches
    pass as they are; the others are merged with the fresh labels for their request.
    ``index_source`` yields index rows."""
    labels = f"""
CREATE TEMP VIEW labels AS
WITH fresh AS MATERIALIZED (
    SELECT * FROM _fresh_labels
), indexed AS NOT MATERIALIZED (
    {_INDEXED.format(source=index_source)}
)
SELECT request_id, label, label_ts, label_count FROM indexed i
WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.request_id = i.request_id)
UNION ALL
SELECT request_id, label, label_ts, label_count FROM ({_MERGE.format(rows='''
    SELECT * FROM fresh
    UNION ALL
    SELECT * FROM indexed i
    WHERE EXISTS (SELECT 1 FROM fresh f WHERE f.request_id = i.request_id)''')})
"""  # noqa: S608
    return [fresh_labels_sql(fresh_source, subject_source), labels]
