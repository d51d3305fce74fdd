"""Helpers shared by the logbook tests: an fsync seam that counts and fails, raw segment reads,
and small prediction batches.

Imported by the tests of this folder as ``logbook_support`` (pytest puts the folder on
``sys.path``). Nothing here mocks the logbook: the fsync callable is the documented seam, and
the reads go to the files on disk.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from keepwell.logbook.ids import new_id
from keepwell.logbook.records import prediction_batch
from keepwell.logbook.segments import read_segment


@dataclass
class FsyncCall:
    fd: int
    size: int
    thread: str
    failed: bool
    is_dir: bool


@dataclass
class CountingFsync:
    """An ``fsync`` that records every call (and the file size it covered), optionally sleeps
    first (a slow disk), and raises ``OSError(EIO)`` from call number ``fail_after + 1`` on."""


    fail_after: int | None = None
    delay_s: float = 0.0
    sync: bool = True  # False: only count (for tests about concurrency, not durability)
    calls: list[FsyncCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        with self._lock:
            fail = self.fail_after is not None and len(self.calls) >= self.fail_after
            self.calls.append(FsyncCall(fd, info.st_size, threading.current_thread().name, fail,
                                        stat.S_ISDIR(info.st_mode)))
        if fail:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.sync:
            os.fsync(fd)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    @property
    def failures(self) -> int:
        with self._lock:
            return sum(c.failed for c in self.calls)


class GatedFsync(CountingFsync):
    """A ``CountingFsync`` whose next call, once :meth:`hold_next` is called, waits until a
    condition holds (a slow disk, for as long as the test needs: say, until every thread has
    written), or at most ``limit_s``. ``met`` says whether the condition was met."""

    def __init__(self, limit_s: float = 10.0) -> None:
        super().__init__()
        self.limit_s = limit_s
        self.met: bool | None = None
        self._until: Any = None

    def hold_next(self, until: Any) -> None:
        self._until = until

    def __call__(self, fd: int) -> None:
        until, self._until = self._until, None
        if until is not None:
            deadline = time.monotonic() + self.limit_s
            while not (met := until()) and time.monotonic() < deadline:
                time.sleep(0.002)
            self.met = met
        super().__call__(fd)


def segment_files(root: Path, kind: str = "predictions", model: str | None = None) -> list[Path]:
    base = root / "segments" / kind
    pattern = f"{model}/*.seg" if model else "*/*.seg"
    return sorted(base.glob(pattern))


def segment_table(root: Path, kind: str = "predictions", model: str | None = None) -> pa.Table:
    """Every whole batch of every segment, read straight from the files."""
    batches = [b for path in segment_files(root, kind, model) for b in read_segment(path).batches]
    if not batches:
        return pa.table({})
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                            promote_options="permissive")


def ids_as_text(column: pa.Array | pa.ChunkedArray | Sequence[object]) -> list[str]:
    """Request ids (Arrow ``uuid``, DuckDB text or ``uuid.UUID``) as canonical text; a null
    stays ``None``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    values = column.to_pylist() if isinstance(column, pa.Array) else list(column)
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, bytes):
            out.append(str(uuid.UUID(bytes=value)))
        else:
            out.append(str(uuid.UUID(str(value))))
    return out


def batch_of(n: int, model: str = "m", *, offset: float = 0.0,
             ids: list[str] | None = None) -> tuple[pa.RecordBatch, list[str]]:
    """A prediction batch of ``n`` rows with known request ids."""
    ids = ids or [new_id() for _ in range(n)]
    features = pa.table({"x": [offset + i for i in range(n)]})
    outputs = pa.table({"prediction": [i % 2 for i in range(n)]})
    return prediction_batch(model, 1, features, outputs, request_ids=ids), ids
