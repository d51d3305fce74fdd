"""The per-process log writer: group-committed appends to this process's own segments.

Durability modes
----------------
``sync``
    :meth:`LogWriter.append` returns only after the batch is on disk (``fsync``). Appends
    from many threads share syncs: while one ``fsync`` runs, the batches written meanwhile
    wait for the next one, which covers them all (group commit).
``batch``
    :meth:`LogWriter.append` returns once the batch is handed to the operating system; a
    background thread syncs every ``flush_interval_ms``. A crash of the *process* loses
    nothing (the kernel holds the data); a crash of the *machine* or a power cut loses at most
    the appends of the last ``flush_interval_ms`` (plus the duration of one sync).

A failed ``fsync`` is never retried, because after one the kernel may have dropped the dirty
pages and a retry that succeeds proves nothing (PostgreSQL's "fsyncgate"). The writer stops:
:attr:`LogWriter.ready` turns false and every later append raises
:class:`~keepwell.errors.LogbookUnavailableError`. A failed *write* (a full disk) fails only
that append: the segment is cut back to its last whole frame and the next append starts a new
segment, so the writer recovers by itself once space is freed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from keepwell._files import make_private_dir
from keepwell.errors import LogbookFullError, LogbookUnavailableError
from keepwell.logbook.layout import LogLayout
from keepwell.logbook.segments import SegmentFile
from keepwell.logbook.staging import StagedJob

__all__ = ["Durability", "LogWriter", "Written"]

Durability = Literal["sync", "batch"]
Kind = Literal["predictions", "feedback"]


@dataclass
class _Stream:
    """The open segment of one (kind, model) and the locks that order its appends."""

    directory: Path
    segment: SegmentFile | None = None
    opened_at: float = 0.0
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    sync_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Written:
    """Where :meth:`LogWriter.write` put a batch: what :meth:`LogWriter.commit` syncs."""

    stream: _Stream
    segment: SegmentFile


class LogWriter:
    """Appends record batches to this process's segments under ``root/segments``.

    Parameters
    ----------
    root:
        The logbook folder.
    durability:
        ``"sync"`` (default) or ``"batch"``; see the module documentation.
    flush_interval_ms:
        How often ``batch`` mode syncs.
    max_segment_bytes, max_segment_age_s:
        When a segment is closed and a new one started, which makes it sealable.
    fsync:
        The sync call (tests inject failures here).
    """

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability = "sync",
                 flush_interval_ms: float = 50.0, max_segment_bytes: int = 64 << 20,
                 max_segment_age_s: float = 60.0,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        if durability not in ("sync", "batch"):
            raise ValueError(f"durability must be 'sync' or 'batch', not {durability!r}")
        self.root = Path(root)
        self.durability = durability
        self.flush_interval_ms = flush_interval_ms
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_age_s = max_segment_age_s
        self._raw_fsync = fsync
        self.writer_id = f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._streams_lock = threading.Lock()
        self._counter = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if durability == "batch":
            self._flusher = threading.Thread(target=self._flush_loop, name="keepwell-log-flush",
                                             daemon=True)
            self._flusher.start()

    def _fsync(self, fd: int) -> None:
        """Every sync of this writer goes through here: the first failure stops it."""
        if self.error is not None:
            raise LogbookUnavailableError("the logbook stopped after a failed sync.")
        try:
            self._raw_fsync(fd)
        except OSError as exc:
            self._fail(exc)
            raise

    @property
    def ready(self) -> bool:
        """False once a sync has failed: the writer no longer accepts records."""
        return self.error is None and not self._stop.is_set()

    # -- appending ------------------------------------------------------------------------

    def append(self, kind: Kind, model: str, batch: pa.RecordBatch) -> None:
        """Write ``batch``; in ``sync`` mode, return only once it is on disk.

        Raises
        ------
        LogbookUnavailableError
            A sync failed earlier (or now), or the writer is closed.
        LogbookFullError
            The disk is full; nothing of this batch was kept. Later appends retry.
        """
        self.commit(self.write(kind, model, batch))

    def write(self, kind: Kind, model: str, batch: pa.RecordBatch) -> Written:
        """Write ``batch`` without waiting for a sync; :meth:`commit` the result to do that.

        Raises as :meth:`append`.
        """
        self._check_ready()
        stream = self._stream(kind, model)
        with stream.write_lock:
            self._check_ready()
            try:
                segment = self._current_segment(stream, batch.schema)
                segment.append(batch)
            except OSError as exc:
                if self.error is not None:  # a sync failed: never a retry
                    self._check_ready()
                # The segment was cut back to its last whole frame; start a new one next time.
                self._retire(stream)
                raise LogbookFullError(
                    f"could not write to the logbook ({exc.strerror or exc}); free space on the "
                    "log volume. Records not acknowledged were not kept."
                ) from None
        return Written(stream, segment)

    def commit(self, written: Written) -> None:
        """In ``sync`` mode, return once what was written is on disk (a sync that started
        after the write, made by this caller or by another); in ``batch`` mode, at once."""
        if self.durability == "sync":
            self._sync(written.stream, written.segment)

    def _check_ready(self) -> None:
        if self.error is not None:
            raise LogbookUnavailableError(
                "the logbook stopped after a failed sync and accepts no more records; check the "
                "log volume, then restart the process."
            )
        if self._stop.is_set():
            raise LogbookUnavailableError("the log writer is closed.")

    def _stream(self, kind: str, model: str) -> _Stream:
        key = (kind, model)
        stream = self._streams.get(key)
        if stream is None:
            with self._streams_lock:
                stream = self._streams.get(key)
                if stream is None:
                    directory = make_private_dir(self.root / "segments" / kind / model)
                    stream = self._streams[key] = _Stream(directory)
        return stream

    def _current_segment(self, stream: _Stream, schema: pa.Schema) -> SegmentFile:
        """The stream's open segment, rotated when full, old or of another schema."""
        segment = stream.segment
        if segment is not None and (
                segment.written >= self.max_segment_bytes
                or time.monotonic() - stream.opened_at >= self.max_segment_age_s
                or not segment.schema.equals(schema, check_metadata=False)):
            self._retire(stream)
            segment = None
        if segment is None:
            with self._streams_lock:
                self._counter += 1
                name = f"{self.writer_id}-{self._counter:06d}.seg"
            segment = SegmentFile(stream.directory / name, schema, fsync=self._fsync)
            stream.segment, stream.opened_at = segment, time.monotonic()
        return segment

    def _retire(self, stream: _Stream) -> None:
        """Close the stream's segment (synced), making it sealable."""
        segment, stream.segment = stream.segment, None
        if segment is not None:
            with stream.sync_lock:
                if self.error is not None:
                    segment.abandon()
                else:
                    self._close_segment(segment)

    def _close_segment(self, segment: SegmentFile) -> None:
        try:
            segment.close()
        except OSError:
            raise LogbookUnavailableError("syncing the logbook failed; the writer stopped.") \
                from None

    # -- syncing --------------------------------------------------------------------------

    def _sync(self, stream: _Stream, segment: SegmentFile) -> None:
        """Group commit: wait until the bytes written so far are synced by someone."""
        target = segment.written
        if segment.synced >= target:
            return
        with stream.sync_lock:
            if segment.synced >= target:
                return
            self._check_ready()
            if segment.closed:  # retired meanwhile: close() synced it, unless it failed
                self._check_ready()
                return
            try:
                segment.sync()
            except OSError as exc:
                raise LogbookUnavailableError(
                    f"syncing the logbook failed ({exc.strerror or exc}); the writer stopped "
                    "and reports unready. The last records were not acknowledged."
                ) from None

    def _fail(self, exc: BaseException) -> None:
        """Stop for good. Open segments stay open (other threads may be using them) and are
        abandoned, unsynced, by :meth:`close`; no append is accepted from now on."""
        if self.error is None:
            self.error = exc

    def flush(self) -> None:
        """Sync every open segment now."""
        for stream in list(self._streams.values()):
            segment = stream.segment
            if segment is not None and not segment.closed:
                self._sync(stream, segment)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_ms / 1000):
            with contextlib.suppress(LogbookUnavailableError):
                self.flush()

    @contextlib.contextmanager
    def staged(self, kind: Kind, model: str) -> Iterator[StagedJob]:
        """Appends published together when the block ends, and deleted if it raises (see
        :mod:`keepwell.logbook.staging`).

        Raises as :meth:`append`, when the job starts and when it is published.
        """
        self._check_ready()
        stream = self._stream(kind, model)
        with self._streams_lock:
            self._counter += 1
            job = f"{self.writer_id}-{self._counter:06d}"
        staged = StagedJob(stream.directory, job, self.max_segment_bytes, self._fsync)
        try:
            yield staged
            self._check_ready()
            staged.publish(LogLayout(self.root).lock(exclusive=True))
        except BaseException:
            staged.discard()
            raise

    def rotate(self) -> None:
        """Close every open segment so that it can be sealed."""
        for stream in list(self._streams.values()):
            with stream.write_lock:
                self._retire(stream)

    def close(self) -> None:
        """Sync and close every segment, and stop the background flusher."""
        if self._stop.is_set():
            return
        try:
            self.rotate()  # synced closes, or plain abandons after a failed sync
        finally:
            self._stop.set()
            if self._flusher is not None:
                self._flusher.join()
