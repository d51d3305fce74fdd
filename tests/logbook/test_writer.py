"""The log writer: sync and batch durability, group commit, failed syncs (fsyncgate), a full
disk, and segment rotation."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from logbook_support import (
    CountingFsync,
    GatedFsync,
    batch_of,
    ids_as_text,
    segment_files,
    segment_table,
)

from keepwell.errors import LogbookError, LogbookFullError, LogbookUnavailableError
from keepwell.logbook.records import prediction_batch
from keepwell.logbook.segments import read_segment, try_lock
from keepwell.logbook.writer import LogWriter


@contextlib.contextmanager
def _writer(root: Path, **options: object) -> Iterator[LogWriter]:
    writer = LogWriter(root, **options)  # type: ignore[arg-type]
    try:
        yield writer
    finally:
        writer.close()


def _is_locked(path: Path) -> bool:
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def _run_threads(n: int, target: object, *args: object) -> None:
    threads = [threading.Thread(target=target, args=(k, *args)) for k in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- sync mode and group commit -------------------------------------------------------------

def test_sync_appends_from_16_threads_are_all_readable(tmp_path: Path) -> None:
    acked: list[list[str]] = [[] for _ in range(16)]
    barrier = threading.Barrier(16)
    with _writer(tmp_path) as writer:
        def work(k: int) -> None:  # an exception here fails the test (pytest's thread hook)
            barrier.wait()
            for i in range(25):
                batch, ids = batch_of(1 + (i + k) % 3, offset=k * 1000 + i)
                writer.append("predictions", "m", batch)
                acked[k].extend(ids)

        _run_threads(16, work)
        assert all(len(ids) > 25 for ids in acked)
        # Read the files while the writer still holds them: acknowledged means on disk.
        found = ids_as_text(segment_table(tmp_path)["request_id"])
        everything = [i for ids in acked for i in ids]
        assert sorted(found) == sorted(everything)
        assert len(found) == len(set(found)) == len(everything) > 16 * 25
        assert writer.ready
    assert sorted(ids_as_text(segment_table(tmp_path)["request_id"])) == sorted(everything)


def test_a_sync_append_returns_only_after_an_fsync_covering_it(tmp_path: Path) -> None:
    fsync = CountingFsync()
    with _writer(tmp_path, fsync=fsync) as writer:
        for i in range(20):
            batch, _ = batch_of(i % 4 + 1)
            writer.append("predictions", "m", batch)
            size = segment_files(tmp_path)[0].stat().st_size
            assert fsync.calls[-1].size == size, i  # the last fsync saw the whole file
            assert not fsync.calls[-1].failed


def test_group_commit_shares_fsyncs_between_concurrent_appends(tmp_path: Path) -> None:
    """While one append's sync runs, the other appends write, then share the next sync. The
    first sync is held until all 16 threads have written (a slow disk), so what is shown does
    not depend on how the threads happen to be scheduled: with one sync per append, the
    others could not write meanwhile."""
    fsync = GatedFsync()
    n_threads = 16
    barrier = threading.Barrier(n_threads)
    with _writer(tmp_path, fsync=fsync) as writer:
        batch, _ = batch_of(1)
        writer.append("predictions", "m", batch)  # open the segment first
        before = fsync.count
        fsync.hold_next(lambda: len(segment_table(tmp_path)) == 1 + n_threads)

        def work(k: int) -> None:
            batch, _ = batch_of(1, offset=float(k * 100))
            barrier.wait()
            writer.append("predictions", "m", batch)

        _run_threads(n_threads, work)
        syncs = fsync.count - before
    assert fsync.met, "the other appends could not write while a sync ran"
    assert len(segment_table(tmp_path)) == n_threads + 1
    assert syncs <= 2, syncs  # the held one, and one for everything written meanwhile


# -- batch mode ------------------------------------------------------------------------------

def test_batch_mode_returns_before_syncing_and_the_flusher_syncs_within_the_interval(
        tmp_path: Path) -> None:
    fsync = CountingFsync()
    interval_s = 0.6
    with _writer(tmp_path, durability="batch", flush_interval_ms=interval_s * 1000,
                 fsync=fsync) as writer:
        created = time.monotonic()
        batch, ids = batch_of(3)
        writer.append("predictions", "m", batch)
        returned = time.monotonic()
        caller = threading.current_thread().name
        on_caller = [c for c in fsync.calls if c.thread == caller]
        size = segment_files(tmp_path)[0].stat().st_size
        assert [c.is_dir for c in on_caller] == [False, True]  # creating the segment, no more
        assert on_caller[0].size < size
        assert ids_as_text(segment_table(tmp_path)["request_id"]) == ids  # written, though

        def flushed() -> bool:
            return any(c.thread == "keepwell-log-flush" and not c.is_dir and c.size >= size
                       for c in fsync.calls)

        if returned - created < interval_s / 2:  # well before the first tick: nothing yet
            time.sleep(max(0.0, created + interval_s / 2 - time.monotonic()))
            assert not flushed()
        while not flushed():
            assert time.monotonic() - returned < interval_s + 2.0, "no flush within the interval"
            time.sleep(0.005)
        assert writer.ready


def test_batch_mode_keeps_every_append_from_many_threads(tmp_path: Path) -> None:
    acked: list[str] = []
    lock = threading.Lock()
    with _writer(tmp_path, durability="batch", flush_interval_ms=5) as writer:
        def work(k: int) -> None:
            for i in range(30):
                batch, ids = batch_of(2, offset=k * 100 + i)
                writer.append("predictions", "m", batch)
                with lock:
                    acked.extend(ids)

        _run_threads(8, work)
    assert sorted(ids_as_text(segment_table(tmp_path)["request_id"])) == sorted(acked)


def test_batch_mode_failed_fsync_stops_the_writer(tmp_path: Path) -> None:
    fsync = CountingFsync(fail_after=2)  # the segment is created, the flusher's sync fails
    with _writer(tmp_path, durability="batch", flush_interval_ms=10, fsync=fsync) as writer:
        batch, _ = batch_of(1)
        writer.append("predictions", "m", batch)  # written, not yet synced: accepted
        deadline = time.monotonic() + 5
        while writer.ready:
            assert time.monotonic() < deadline, "the failed background sync went unnoticed"
            time.sleep(0.005)
        assert isinstance(writer.error, OSError) and writer.error.errno == errno.EIO
        with pytest.raises(LogbookUnavailableError):
            writer.append("predictions", "m", batch_of(1)[0])
        time.sleep(0.05)  # several more flusher ticks
        with pytest.raises(LogbookUnavailableError):
            writer.flush()  # asked to make records durable, it says it cannot
    assert fsync.failures == 1


# -- failed fsync (fsyncgate) ---------------------------------------------------------------

def test_a_failed_fsync_stops_the_writer_and_is_never_retried(tmp_path: Path) -> None:
    fsync = CountingFsync(fail_after=3)  # create the segment, sync one append, then EIO
    with _writer(tmp_path, fsync=fsync) as writer:
        first, first_ids = batch_of(2)
        writer.append("predictions", "m", first)
        with pytest.raises(LogbookUnavailableError) as caught:
            writer.append("predictions", "m", batch_of(2)[0])
        assert caught.value.status == 503 and caught.value.code == "logbook-unavailable"
        assert not writer.ready
        assert isinstance(writer.error, OSError) and writer.error.errno == errno.EIO
        for model in ("m", "another"):  # every stream refuses, even one never opened
            with pytest.raises(LogbookUnavailableError):
                writer.append("predictions", model, batch_of(1)[0])
        with pytest.raises(LogbookUnavailableError):
            writer.flush()
        writer.rotate()  # closes nothing synced: abandons
    writer.close()
    assert fsync.failures == 1
    assert fsync.count == 4  # nothing called fsync again after the failure
    # What was acknowledged before the failure is still there.
    assert set(first_ids) <= set(ids_as_text(segment_table(tmp_path)["request_id"]))


@pytest.mark.parametrize("when", ["first segment", "after rotation"])
def test_a_failed_fsync_while_opening_a_segment_stops_the_writer(tmp_path: Path,
                                                                 when: str) -> None:
    fsync = CountingFsync(fail_after=0 if when == "first segment" else 3)
    with _writer(tmp_path, fsync=fsync) as writer:
        if when == "after rotation":
            writer.append("predictions", "m", batch_of(1)[0])
            writer.rotate()
        try:
            writer.append("predictions", "m", batch_of(1)[0])
        except LogbookError as exc:
            outcome = exc
        else:
            pytest.fail("the append succeeded although fsync failed")
        with contextlib.suppress(LogbookError):
            writer.append("predictions", "m", batch_of(1)[0])
        assert isinstance(outcome, LogbookUnavailableError), type(outcome)
        assert not writer.ready
        assert fsync.failures == 1


def test_a_failed_fsync_under_concurrency_loses_no_acknowledged_record(tmp_path: Path) -> None:
    fsync = CountingFsync(fail_after=12, delay_s=0.001)
    acked: list[str] = []
    outcomes: list[LogbookError] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)
    with _writer(tmp_path, fsync=fsync) as writer:
        def work(k: int) -> None:
            barrier.wait()
            for i in range(30):
                batch, ids = batch_of(1, offset=k * 100 + i)
                try:
                    writer.append("predictions", "m", batch)
                except LogbookError as exc:  # anything else fails the test (thread hook)
                    with lock:
                        outcomes.append(exc)
                    return
                with lock:
                    acked.extend(ids)

        _run_threads(16, work)
        assert not writer.ready
    assert fsync.failures == 1
    assert len(outcomes) == 16  # every thread was stopped, none kept going
    assert all(isinstance(exc, LogbookError) for exc in outcomes), outcomes
    found = ids_as_text(segment_table(tmp_path)["request_id"])
    assert len(found) == len(set(found))
    assert set(acked) <= set(found)


# -- lifecycle -------------------------------------------------------------------------------

def test_close_releases_every_segment_and_refuses_later_appends(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path)
    writer.append("predictions", "a", batch_of(1, model="a")[0])
    writer.append("predictions", "b", batch_of(1, model="b")[0])
    feedback_ids = batch_of(1)[1]
    feedback = pa.RecordBatch.from_pydict({"request_id": feedback_ids, "label": [1]})
    writer.append("feedback", "a", feedback)
    files = segment_files(tmp_path) + segment_files(tmp_path, "feedback")
    assert len(files) == 3 and all(_is_locked(p) for p in files)
    writer.close()
    writer.close()
    assert not any(_is_locked(p) for p in files)
    assert not writer.ready
    with pytest.raises(LogbookUnavailableError, match="closed"):
        writer.append("predictions", "a", batch_of(1, model="a")[0])


def test_durability_must_be_sync_or_batch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        LogWriter(tmp_path, durability="eventually")  # type: ignore[arg-type]


def test_segments_and_folders_are_private(tmp_path: Path) -> None:
    root = tmp_path / "log"
    with _writer(root) as writer:
        writer.append("predictions", "m", batch_of(1)[0])
    (path,) = segment_files(root)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (root, root / "segments", root / "segments" / "predictions", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# -- rotation --------------------------------------------------------------------------------

def _check_rotated(root: Path, expected_segments: int, ids: list[str]) -> None:
    files = segment_files(root)
    assert len(files) == expected_segments
    for path in files:
        contents = read_segment(path)
        assert not contents.torn_tail
        assert all(b.schema.equals(contents.schema) for b in contents.batches)
    assert sorted(ids_as_text(segment_table(root)["request_id"])) == sorted(ids)


def test_rotation_by_size(tmp_path: Path) -> None:
    ids: list[str] = []
    with _writer(tmp_path, max_segment_bytes=1) as writer:  # every append starts a segment
        for i in range(5):
            batch, batch_ids = batch_of(2, offset=i)
            writer.append("predictions", "m", batch)
            ids += batch_ids
            files = segment_files(tmp_path)
            assert len(files) == i + 1
            assert [_is_locked(p) for p in files] == [False] * i + [True]
    _check_rotated(tmp_path, 5, ids)


def test_rotation_by_size_keeps_small_appends_together(tmp_path: Path) -> None:
    ids: list[str] = []
    with _writer(tmp_path, max_segment_bytes=1 << 20) as writer:
        for i in range(20):
            batch, batch_ids = batch_of(2, offset=i)
            writer.append("predictions", "m", batch)
            ids += batch_ids
    _check_rotated(tmp_path, 1, ids)


def test_rotation_by_age(tmp_path: Path) -> None:
    ids: list[str] = []
    # Two seconds: the first two appends (two small fsyncs) fall well within it even on a
    # loaded machine.
    with _writer(tmp_path, max_segment_age_s=2.0) as writer:
        for _ in range(2):
            batch, batch_ids = batch_of(1)
            writer.append("predictions", "m", batch)
            ids += batch_ids
        assert len(segment_files(tmp_path)) == 1
        time.sleep(2.05)
        batch, batch_ids = batch_of(1)
        writer.append("predictions", "m", batch)
        ids += batch_ids
        files = segment_files(tmp_path)
        assert [_is_locked(p) for p in files] == [False, True]
    _check_rotated(tmp_path, 2, ids)


def test_rotation_by_schema(tmp_path: Path) -> None:
    def batch(feature: str) -> pa.RecordBatch:
        return prediction_batch("m", 1, pa.table({feature: [1.0]}), pa.table({"prediction": [0]}))

    with _writer(tmp_path) as writer:
        for feature in ("x", "x", "y", "y", "x"):
            writer.append("predictions", "m", batch(feature))
    files = segment_files(tmp_path)
    assert len(files) == 3
    names = [read_segment(p).schema.names[-1] for p in files]  # type: ignore[union-attr]
    assert names == ["x", "y", "x"]
    assert [sum(b.num_rows for b in read_segment(p).batches) for p in files] == [2, 2, 1]


def test_rotate_closes_open_segments(tmp_path: Path) -> None:
    with _writer(tmp_path) as writer:
        writer.append("predictions", "m", batch_of(1)[0])
        writer.rotate()
        assert not any(_is_locked(p) for p in segment_files(tmp_path))
        writer.append("predictions", "m", batch_of(1)[0])
        assert [_is_locked(p) for p in segment_files(tmp_path)] == [False, True]


# -- a full disk (RELIABILITY D3) -----------------------------------------------------------

@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, so that the disk really fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(volume)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        if subprocess.run(["umount", str(volume)], check=False).returncode:
            subprocess.run(["umount", "-l", str(volume)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\xff" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


def test_a_full_disk_fails_only_that_append_and_recovers_once_space_is_freed(
        small_volume: Path) -> None:
    root = small_volume / "log"
    acked: list[str] = []

    def big() -> tuple[pa.RecordBatch, list[str]]:
        batch, ids = batch_of(40)
        blob = pa.array(["z" * 4000] * 40)
        return batch.append_column("blob", blob), ids

    with _writer(root) as writer:
        for _ in range(3):
            batch, ids = batch_of(5)
            writer.append("predictions", "m", batch)
            acked += ids
        filler = small_volume / "filler"
        _fill(filler)
        refused: list[str] = []
        for _ in range(2):  # the first cuts the open segment back; the second cannot open one
            batch, ids = big()
            with pytest.raises(LogbookFullError) as caught:
                writer.append("predictions", "m", batch)
            assert caught.value.code == "logbook-full" and caught.value.status == 503
            refused += ids
            assert writer.ready  # a full disk is not a failed sync: later appends may retry
        contents = [read_segment(p) for p in segment_files(root)]
        assert not any(c.torn_tail for c in contents)  # cut back to the last whole frame
        assert list(root.rglob(".*.new")) == []
        filler.unlink()
        for _ in range(2):  # recovers without a restart
            batch, ids = big()
            writer.append("predictions", "m", batch)
            acked += ids
    found = ids_as_text(segment_table(root)["request_id"])
    assert sorted(found) == sorted(acked)
    assert not set(found) & set(refused)


def _race_trial(root: Path, big: pa.RecordBatch) -> list[LogbookError]:
    """Four threads append big batches to their own models, four small ones to another;
    the 41st fsync fails. Returns what the threads were told."""
    fsync = CountingFsync(fail_after=40, sync=False)
    seen: list[LogbookError] = []
    with _writer(root, fsync=fsync) as writer:
        def work(k: int) -> None:
            model = f"big{k}" if k < 4 else "small"
            for _ in range(50):
                batch = big if k < 4 else batch_of(1, model="small")[0]
                try:
                    writer.append("predictions", model, batch)
                except LogbookError as exc:
                    seen.append(exc)
                    return

        _run_threads(8, work)
    return seen


def test_a_failed_fsync_never_reports_a_full_disk_to_other_streams(tmp_path: Path) -> None:
    rows = 200_000
    big = prediction_batch("big", 1, pa.table({"x": pa.array([1.0] * rows)}),
                           pa.table({"prediction": pa.array([0] * rows)}))
    for trial in range(20):
        seen = _race_trial(tmp_path / f"t{trial}", big)
        assert len(seen) == 8
        full = [exc for exc in seen if isinstance(exc, LogbookFullError)]
        assert full == [], (trial, str(full[0]))
