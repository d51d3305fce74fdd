"""Staged appends: a batch job's records appear in the logbook whole, or not at all.

A job (``keepwell score``) writes its batches to hidden segments beside the model's others,
which no reader and no sealer looks at (they see ``*.seg`` only), each synced when it is full.
When the job succeeds, every staged segment is synced and renamed into place, then the folder
is synced, all under the logbook's exclusive lock, so a reader sees every record of the job or
none: from then on they are read and sealed like any others. When it fails, the
staged segments are deleted. A crash of the process leaves them behind, beside the job's lock
file; :func:`remove_abandoned` (run by every seal) deletes them once no process holds that
lock. Only a crash during the final renames, which take milliseconds, can publish part of a
job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pyarrow as pa

from keepwell.errors import LogbookFullError
from keepwell.logbook.layout import sync_dir
from keepwell.logbook.segments import SegmentFile, try_lock

__all__ = ["StagedJob", "remove_abandoned"]

_LOCK = ".staging"
_STAGED = ".staged"


class StagedJob:
    """One job's staged segments in ``directory``, named after ``job``.

    ``fsync`` is the writer's sync: a failure stops the writer as any other would.
    """

    def __init__(self, directory: Path, job: str, max_bytes: int,
                 fsync: Callable[[int], None]) -> None:
        self.directory, self.job, self.max_bytes = directory, job, max_bytes
        self._fsync = fsync
        self.segments: list[SegmentFile] = []
        self.rows = 0
        self._lock_path = directory / f".{job}{_LOCK}"
        # Held until the job ends: while it is, the staged files are not abandoned. Locked
        # under another name first, so that a seal never finds it unlocked.
        pending = self._lock_path.with_name(self._lock_path.name + ".new")
        self._lock_fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(pending, self._lock_path)

    def append(self, batch: pa.RecordBatch) -> None:
        current = self.segments[-1] if self.segments else None
        if current is not None and (current.written >= self.max_bytes or not
                                    current.schema.equals(batch.schema, check_metadata=False)):
            current.close()  # synced; the job's lock, not the segment's, keeps it ours
            current = None
        if current is None:
            path = self.directory / f".{self.job}-{len(self.segments):05d}{_STAGED}"
            current = SegmentFile(path, batch.schema, fsync=self._fsync)
            self.segments.append(current)
        try:
            current.append(batch)
            current.start_writeback()  # so that publishing waits for the last batch only
        except OSError as exc:
            raise LogbookFullError(
                f"could not write to the logbook ({exc.strerror or exc}); free space on the log "
                "volume. The job's records were not kept.") from None
        self.rows += batch.num_rows

    def publish(self, exclusive: AbstractContextManager[object]) -> None:
        """Make every staged record visible, durably; the renames run inside ``exclusive``
        (the logbook's lock, which readers share), so a reader sees all of them or none."""
        for segment in self.segments:
            segment.sync()
        with exclusive:
            for segment in self.segments:
                final = segment.path.with_name(
                    segment.path.name[1:].removesuffix(_STAGED) + ".seg")
                os.rename(segment.path, final)
                segment.path = final
            sync_dir(self.directory)
        self._end(delete=False)

    def discard(self) -> None:
        """Delete every staged record."""
        self._end(delete=True)

    def _end(self, *, delete: bool) -> None:
        for segment in self.segments:
            if delete:
                segment.abandon()
                with contextlib.suppress(FileNotFoundError):
                    segment.path.unlink()
            else:
                segment.close()
        self.segments = []
        with contextlib.suppress(FileNotFoundError):
            self._lock_path.unlink()
        os.close(self._lock_fd)


def remove_abandoned(directory: Path) -> int:
    """Delete the staged segments of jobs whose process is gone; how many files went."""
    removed = 0
    for lock in directory.glob(f".*{_LOCK}"):
        fd = try_lock(lock)
        if fd is None:
            continue  # the job is running
        try:
            job = lock.name[1:].removesuffix(_LOCK)
            for staged in directory.glob(f".*{_STAGED}"):
                if staged.name.startswith(f".{job}-"):
                    staged.unlink(missing_ok=True)
                    removed += 1
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed
