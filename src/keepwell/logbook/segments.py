"""Segment files: the durable, append-only first home of every logged record.

A segment is written by one process and holds records of one schema::

    b"KWSEG\\x01\\n\\x00"                        8-byte magic
    frame: <u32 length> <u32 crc32> <payload>   the Arrow IPC schema message
    frame: <u32 length> <u32 crc32> <payload>   an Arrow IPC record-batch message
    …

A reader takes frames while their length fits and their CRC matches, and stops at the first
that does not: a crash can only cut the tail, never change a frame a writer had synced, so what
a reader returns is exactly a prefix of what was written, with no torn record.

A batch larger than :data:`FRAME_BYTES` is written as several frames. After each but the last,
the disk is asked to start on what is written so far (an ``fsync`` of a duplicate descriptor,
on a background thread) while the next frame is serialised, so the sync that acknowledges the
batch waits for one frame, not for all of it. A crash part-way can leave the first frames of
an unacknowledged batch, whole; a failed write cuts the file back to before the batch.

The writing process holds an exclusive ``flock`` on the file for as long as it may append; a
segment whose lock can be taken belongs to nobody (closed, or its writer died) and may be
sealed into Parquet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

__all__ = ["MAGIC", "SegmentFile", "read_segment", "try_lock"]

MAGIC = b"KWSEG\x01\n\x00"
_HEADER = struct.Struct("<II")
_MAX_FRAME = (1 << 32) - 1
#: Batches above this size are split into frames of about this size (see the module doc).
FRAME_BYTES = 32 << 20

_writeback_pool: ThreadPoolExecutor | None = None
_writeback_lock = threading.Lock()


def _writeback() -> ThreadPoolExecutor:
    global _writeback_pool
    with _writeback_lock:
        if _writeback_pool is None:
            _writeback_pool = ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="keepwell-log-writeback")
        return _writeback_pool


def _forget_pool_in_child() -> None:
    """A forked child has none of the parent's threads: it starts a pool of its own."""
    global _writeback_pool, _writeback_lock
    _writeback_pool, _writeback_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


class SegmentFile:
    """One open segment, appended to by one process.

    Parameters
    ----------
    path:
        Where to create it; it must not exist.
    schema:
        The schema of every batch it will hold.
    fsync:
        The sync call, ``os.fsync`` by default (tests inject failures here).
    """

    def __init__(self, path: Path, schema: pa.Schema,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        self.path = path
        self.schema = schema
        self._fsync = fsync
        self._writing_back: Future[None] | None = None
        self._writeback_lock = threading.Lock()
        self._writeback_error: OSError | None = None
        # Created under a temporary name and renamed once locked and headed, so a sealer
        # never sees a segment its writer does not hold yet.
        pending = path.with_name(f".{path.name}.new")
        self.fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.written = 0
            self._write(MAGIC)
            self._write_frame(schema.serialize())
            self._fsync(self.fd)
            os.rename(pending, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:  # the directory entry must be durable before any record is acknowledged
                self._fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self.synced = self.written
            self.rows = 0
        except BaseException:
            os.close(self.fd)
            with contextlib.suppress(FileNotFoundError):
                pending.unlink()
            raise
        self.closed = False

    def append(self, batch: pa.RecordBatch) -> int:
        """Write one batch (not yet synced); returns the file offset after it.

        If a write fails part-way (a full disk), the file is cut back to before the batch and
        the error is raised, so the segment stays a valid prefix.
        """
        before = self.written
        try:
            parts = _parts(batch)
            for i, part in enumerate(parts):
                self._write_frame(part.serialize())
                if i < len(parts) - 1:
                    self.start_writeback()
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, before)
            # A sync meanwhile may have counted bytes now cut: what follows must be synced.
            self.written, self.synced = before, min(self.synced, before)
            raise
        self.rows += batch.num_rows
        return self.written

    def start_writeback(self) -> None:
        """Have the disk start on what is written, without waiting for it (unless a
        writeback is still running: the next sync covers what it would)."""
        with self._writeback_lock:
            if self._writing_back is not None and not self._writing_back.done():
                return
        copy = os.dup(self.fd)

        def run() -> None:
            try:
                self._fsync(copy)
            except OSError as exc:
                self._writeback_error = self._writeback_error or exc
            finally:
                os.close(copy)

        with self._writeback_lock:
            self._writing_back = _writeback().submit(run)

    def sync(self) -> None:
        """fsync everything written so far. An error propagates; it is never retried."""
        target = self.written
        with self._writeback_lock:
            pending, self._writing_back = self._writing_back, None
        if pending is not None:
            pending.result()  # the pool runs in order: every writeback so far is done
        if self._writeback_error is not None:
            # The kernel may have dropped pages: a later fsync that passes proves nothing (and
            # may not even see the error), so a failed writeback is this sync's error, always.
            raise self._writeback_error
        if self.synced < target:
            self._fsync(self.fd)
            self.synced = target

    def close(self) -> None:
        """Sync, release the lock and close. Idempotent."""
        if self.closed:
            return
        try:
            self.sync()
        finally:
            self.closed = True
            os.close(self.fd)  # releases the flock

    def abandon(self) -> None:
        """Close without syncing (after a failed sync, nothing more may be trusted)."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def _write_frame(self, payload: pa.Buffer) -> None:
        if payload.size > _MAX_FRAME:
            raise ValueError("a single batch may serialise to at most 4 GiB; split it.")
        view = memoryview(payload)
        self._write(_HEADER.pack(payload.size, zlib.crc32(view)), view)

    def _write(self, *parts: bytes | memoryview) -> None:
        buffers = [memoryview(p) for p in parts]
        while buffers:
            n = os.writev(self.fd, buffers)
            self.written += n
            while buffers and n >= len(buffers[0]):
                n -= len(buffers[0])
                buffers.pop(0)
            if buffers and n:
                buffers[0] = buffers[0][n:]


@dataclass(frozen=True)
class SegmentContents:
    """What a reader found in a segment: its schema, its whole batches, and where they end."""

    schema: pa.Schema | None
    batches: list[pa.RecordBatch]
    valid_bytes: int
    total_bytes: int

    @property
    def torn_tail(self) -> bool:
        return self.valid_bytes < self.total_bytes


def _parts(batch: pa.RecordBatch) -> list[pa.RecordBatch]:
    """``batch`` in slices of about :data:`FRAME_BYTES` (one slice when it is smaller)."""
    if batch.num_rows < 2:
        return [batch]
    # (nbytes walks every buffer and costs a single-record append ~200 µs; this is cheap.)
    size = batch.get_total_buffer_size()
    if size <= FRAME_BYTES:
        return [batch]
    rows = max(1, batch.num_rows * FRAME_BYTES // size)
    return [batch.slice(start, rows) for start in range(0, batch.num_rows, rows)]


def _frames(data: bytes) -> Iterator[tuple[int, memoryview]]:
    view = memoryview(data)
    offset = len(MAGIC)
    while offset + _HEADER.size <= len(view):
        length, crc = _HEADER.unpack_from(view, offset)
        start = offset + _HEADER.size
        end = start + length
        # A real frame is never empty: a zero length is the zero-filled tail that a machine
        # crash can leave after the last synced frame (and crc32 of nothing is 0).
        if length == 0 or end > len(view) or zlib.crc32(view[start:end]) != crc:
            return
        yield end, view[start:end]
        offset = end


def read_segment(path: Path) -> SegmentContents:
    """The valid prefix of a segment: every frame whose length and CRC hold."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SegmentContents(None, [], 0, 0)
    if not data.startswith(MAGIC):
        return SegmentContents(None, [], 0, len(data))
    schema: pa.Schema | None = None
    batches: list[pa.RecordBatch] = []
    valid = len(MAGIC)
    for end, payload in _frames(data):
        buffer = pa.py_buffer(payload)
        try:
            if schema is None:
                schema = pa.ipc.read_schema(buffer)
            else:
                batches.append(pa.ipc.read_record_batch(buffer, schema))
        except (pa.ArrowException, EOFError, ValueError):
            break  # a frame whose CRC holds by chance but does not decode ends the prefix
        valid = end
    return SegmentContents(schema, batches, valid if schema is not None else 0, len(data))


def try_lock(path: Path) -> int | None:
    """Open ``path`` and take its lock without waiting; the fd, or None if a writer holds it.

    The caller closes the fd to release the lock.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
