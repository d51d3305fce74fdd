"""Staged appends (keepwell.logbook.staging): a job's records appear whole when it ends, are
dropped when it fails, and a crashed job's files are removed by the next seal, never read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.logbook.logbook_support import CountingFsync, batch_of, ids_as_text

from keepwell.errors import LogbookUnavailableError
from keepwell.logbook import Logbook, staging
from keepwell.logbook.segments import read_segment

MODEL = "m"


def _frames(n: int, offset: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.DataFrame({"x": [float(offset + i) for i in range(n)]}),
            pd.DataFrame({"prediction": [i % 2 for i in range(n)]}))


def _hidden(root: Path) -> list[str]:
    folder = root / "segments" / "predictions" / MODEL
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_staged_records_appear_together_when_the_job_ends(book: Logbook) -> None:
    with book.staged_predictions(MODEL) as append_arrow:
        first = append_arrow(1, *_frames(3), arm="batch")
        second = append_arrow(1, *_frames(2, offset=3), arm="batch")
        assert book.predictions(MODEL).num_rows == 0
        book.seal()  # a seal meanwhile neither publishes nor removes them
        assert book.predictions(MODEL).num_rows == 0
    table = book.predictions(MODEL)
    assert ids_as_text(table["request_id"]) == ids_as_text(first) + ids_as_text(second)
    assert table["x"].to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert set(table["arm"].to_pylist()) == {"batch"}
    assert _hidden(book.root) == []
    book.seal()
    assert book.predictions(MODEL).num_rows == 5


def test_a_failed_job_keeps_nothing(book: Logbook) -> None:
    book.append_frame(MODEL, 1, *_frames(2))  # an ordinary append is not touched
    with pytest.raises(RuntimeError, match="the job failed"), \
            book.staged_predictions(MODEL) as append_arrow:
        append_arrow(1, *_frames(4), arm="batch")
        raise RuntimeError("the job failed")
    assert book.predictions(MODEL).num_rows == 2
    assert _hidden(book.root) == []


def test_a_long_job_spans_segments_and_publishes_them_all_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that asks while the segments are being renamed waits, then sees them all."""
    book = Logbook(tmp_path / "log", max_segment_bytes=2_000)
    other = Logbook(book.root)  # another reader, made beforehand
    seen: list[int] = []
    readers: list[threading.Thread] = []
    asking = threading.Event()  # the reader is about to take the shared lock
    rename, lock = os.rename, other.layout.lock

    def announced_lock(exclusive: bool) -> Any:
        if not exclusive:
            asking.set()
        return lock(exclusive)

    monkeypatch.setattr(other.layout, "lock", announced_lock)

    def rename_with_a_reader(source: Path, target: Path) -> None:
        rename(source, target)
        if str(source).endswith(".staged") and not readers:  # after the first publishing one
            reader = threading.Thread(
                target=lambda: seen.append(other.predictions(MODEL).num_rows))
            readers.append(reader)
            reader.start()
            assert asking.wait(30)
            reader.join(timeout=0.3)
            # Without the publication's exclusive lock it would have read one segment of 20.
            assert reader.is_alive() and seen == []

    monkeypatch.setattr(staging.os, "rename", rename_with_a_reader)
    try:
        with book.staged_predictions(MODEL) as append_arrow:
            for k in range(20):
                append_arrow(1, *_frames(50, offset=50 * k), arm="batch")
            staged = [n for n in _hidden(book.root) if n.endswith(".staged")]
            assert len(staged) == 20  # each batch outgrew the 2 kB segment before it
        readers[0].join(timeout=30)
        assert seen == [1000]
        published = sorted((book.root / "segments" / "predictions" / MODEL).glob("*.seg"))
        assert len(published) == 20
        assert book.predictions(MODEL)["x"].to_pylist() == [float(i) for i in range(1000)]
    finally:
        book.close()
        other.close()


def test_a_failed_sync_at_publication_keeps_nothing_and_stops_the_writer(tmp_path: Path
                                                                           ) -> None:
    fsync = CountingFsync()
    book = Logbook(tmp_path / "log", fsync=fsync)
    try:
        with pytest.raises(OSError, match="Input/output error"), \
                book.staged_predictions(MODEL) as append_arrow:
            append_arrow(1, *_frames(3), arm="batch")
            fsync.fail_after = fsync.count  # the next sync, the one publishing, fails
        assert book.predictions(MODEL).num_rows == 0
        assert _hidden(book.root) == []
        assert not book.ready
        with pytest.raises(LogbookUnavailableError):
            book.append_frame(MODEL, 1, *_frames(1))
    finally:
        book.close()


CRASHING_JOB = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from keepwell.logbook import Logbook
    book = Logbook(sys.argv[1])
    with book.staged_predictions("m") as append_arrow:
        append_arrow(1, pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"prediction": [0, 1]}))
        print("staged", flush=True)
        sys.stdin.readline()  # killed here
""")


def test_a_crashed_jobs_files_are_never_read_and_the_next_seal_removes_them(tmp_path: Path
                                                                            ) -> None:
    root = tmp_path / "log"
    job = subprocess.Popen([sys.executable, "-c", CRASHING_JOB, str(root)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout is not None and job.stdout.readline().strip() == "staged"
        book = Logbook(root)
        book.seal()  # the job is alive: its files stay
        assert [n.rsplit(".", 1)[-1] for n in _hidden(root)] == ["staged", "staging"]
        os.kill(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
        assert book.predictions(MODEL).num_rows == 0
        book.seal()
        assert _hidden(root) == []
        assert book.predictions(MODEL).num_rows == 0
        book.close()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
        if job.stdout is not None:
            job.stdout.close()
        if job.stdin is not None:
            job.stdin.close()


def test_staged_batches_are_whole_record_batches(book: Logbook) -> None:
    batch, ids = batch_of(4, MODEL)
    with book.writer.staged("predictions", MODEL) as job:
        job.append(batch)
        assert job.rows == 4
    assert ids_as_text(book.predictions(MODEL)["request_id"]) == ids
    (segment,) = (book.root / "segments" / "predictions" / MODEL).glob("*.seg")
    assert [b.num_rows for b in read_segment(segment).batches] == [4]
