"""The logbook across processes and crashes (RELIABILITY D1, D9; issue 3's must-shows).

(a) A writer process appends single records and small batches in ``sync`` mode and is killed
    with SIGKILL at a seeded random moment, over and over (a fresh process each cycle). It
    journals each batch's ids to a file *before* appending ("T") and *after* the append
    returned ("A"), so the parent knows what was acknowledged. After every kill, a Logbook
    opened on the folder with no repair step must show every acknowledged id, no id twice,
    nothing that was never written, each batch whole or absent, and every column exactly as
    given. Sealing (once in the middle, once at the end) keeps the counts. The same runs in
    ``batch`` mode, whose documented promise is that a process crash loses nothing.
(b) Four processes append at once; one read then counts exactly.
(c) Erasure, with one writer process dead and another still holding its segments, removes
    every record about one subject and nothing else, by counts.
(d) SIGTERM to a ``batch``-mode writer that stops and closes the logbook: everything
    acknowledged is there, and synced (D9).

Children are forked (importing keepwell takes seconds; a fork a few milliseconds).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import stat
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keepwell.logbook import Logbook, Prediction
from keepwell.logbook.ids import new_id
from keepwell.logbook.segments import read_segment, try_lock

MODEL = "churn"
SEED = 20261126
CTX = mp.get_context("fork")
QUERY = ("SELECT request_id::VARCHAR AS request_id, model, version, arm, latency_ms, subject, "
         "prediction, score, x, k, city FROM predictions")


def _values(rid: str) -> dict[str, Any]:
    """Every logged value of a record, derived from its id (so the parent can check it)."""
    h = uuid.UUID(rid).int
    return {"x": (h % 100_003) / 7, "k": h % 1000, "city": f"city-{h % 17}",
            "subject": f"s{h % 11}", "latency_ms": (h % 500) / 10, "prediction": h % 2,
            "score": (h % 997) / 997}


def _expected(rid: str, kind: str) -> dict[str, Any]:
    version, arm = (1, "champion") if kind == "s" else (2, "challenger")
    return {"request_id": rid, "model": MODEL, "version": version, "arm": arm, **_values(rid)}


def _append(book: Logbook, ids: list[str]) -> None:
    if len(ids) == 1:
        v = _values(ids[0])
        book.append(Prediction(MODEL, 1, {"x": v["x"], "k": v["k"], "city": v["city"]},
                               v["prediction"], {"score": v["score"]}, arm="champion",
                               latency_ms=v["latency_ms"], subject=v["subject"],
                               request_id=ids[0]))
        return
    rows = [_values(i) for i in ids]
    book.append_frame(MODEL, 2, {c: [r[c] for r in rows] for c in ("x", "k", "city")},
                      {c: [r[c] for r in rows] for c in ("prediction", "score")},
                      arm="challenger", latency_ms=[r["latency_ms"] for r in rows],
                      subjects=[r["subject"] for r in rows], request_ids=ids)


def _journalled_fsync(journal_fd: int) -> Any:
    """An fsync that, once it returned, journals which file it synced and up to what size."""
    def fsync(fd: int) -> None:
        os.fsync(fd)
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode):
            name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
            os.write(journal_fd, f"S {name} {info.st_size}\n".encode())
    return fsync


def _writer(root: str, journal: str, seed: int, progress: Any, durability: str) -> None:
    """Append until killed (or, after SIGTERM, stop, close the logbook and say so)."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    rng = random.Random(seed)
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    book = Logbook(root, durability=durability, flush_interval_ms=20,
                   max_segment_bytes=24 << 10, fsync=_journalled_fsync(fd))
    while not stopping:
        single = rng.random() < 0.5
        ids = [new_id() for _ in range(1 if single else rng.randint(2, 16))]
        os.write(fd, f"T {'s' if single else 'b'} {' '.join(ids)}\n".encode())
        _append(book, ids)
        os.write(fd, f"A {' '.join(ids)}\n".encode())
        progress.value += 1
    book.close()
    os.write(fd, b"CLOSED\n")
    os.close(fd)


class Journal:
    """What the writers said: ids tried (with their batch) and ids acknowledged."""

    def __init__(self) -> None:
        self.tried: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.acked: set[str] = set()
        self.synced: dict[str, int] = {}
        self.closed = False

    def read(self, path: Path) -> tuple[int, int]:
        """Take in one writer's journal; returns (batches tried, batches acknowledged)."""
        tried = acked = 0
        for line in path.read_bytes().split(b"\n")[:-1]:  # complete lines only
            tag, *rest = line.decode().split()
            if tag == "T":
                batch = tuple(rest[1:])
                self.tried.update((i, (rest[0], batch)) for i in batch)
                tried += 1
            elif tag == "A":
                self.acked.update(rest)
                acked += 1
            elif tag == "S":
                self.synced[rest[0]] = max(self.synced.get(rest[0], 0), int(rest[1]))
            elif tag == "CLOSED":
                self.closed = True
        return tried, acked


def _check(root: Path, journal: Journal, verified: set[str]) -> int:
    """Open the logbook as it is and check every invariant; returns the number of records."""
    book = Logbook(root)
    try:
        table = book.query(QUERY)
    finally:
        book.close()
    ids = table.column("request_id").to_pylist()
    present = set(ids)
    assert None not in present, "a record without an id"
    assert len(ids) == len(present), "a record appears twice"
    assert not journal.acked - present, f"{len(journal.acked - present)} acknowledged lost"
    assert present <= journal.tried.keys(), "a record nobody wrote"
    for _kind, batch in set(journal.tried.values()):
        assert len(present.intersection(batch)) in (0, len(batch)), "a batch kept in part"
    fresh = [n for n, rid in enumerate(ids) if rid not in verified]
    for row in table.take(pa.array(fresh, pa.int64())).to_pylist():  # no torn row
        expected = _expected(row["request_id"], journal.tried[row["request_id"]][0])
        assert row == expected, row
        verified.add(row["request_id"])
    return len(ids)


def _seal(root: Path, journal: Journal, verified: set[str]) -> None:
    before = _check(root, journal, verified)
    book = Logbook(root)
    try:
        report = book.seal()
    finally:
        book.close()
    assert report.segments >= 1
    assert _check(root, journal, verified) == before
    assert list(root.glob("segments/*/*/*.seg")) == []
    assert list(root.glob("segments/*/*/*.sealed")) == []


def _kill_cycles(root: Path, tmp: Path, durability: str, cycles: int, seed: int
                 ) -> tuple[Journal, Counter[str]]:
    rng = random.Random(seed)
    journal, verified, seen = Journal(), set[str](), Counter[str]()
    progress = CTX.RawValue("q", 0)  # no lock: a killed child must not leave one held
    for cycle in range(cycles):
        path = tmp / f"journal-{cycle:03d}"
        progress.value = 0
        child = CTX.Process(target=_writer, daemon=True,
                            args=(str(root), str(path), rng.getrandbits(32), progress,
                                  durability))
        child.start()
        assert child.pid is not None
        try:
            deadline = time.monotonic() + 30
            while progress.value == 0:  # until it is appending
                assert child.exitcode is None, "the writer died on its own"
                assert time.monotonic() < deadline, "the writer never appended"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.020, 0.150))
            os.kill(child.pid, signal.SIGKILL)
            child.join(timeout=30)
            assert child.exitcode == -signal.SIGKILL, child.exitcode
        finally:
            if child.exitcode is None:
                os.kill(child.pid, signal.SIGKILL)
                child.join(timeout=30)
        tried, acked = journal.read(path)
        seen["batches acknowledged"] += acked
        seen["killed inside an append"] += tried > acked
        _check(root, journal, verified)
        if cycle == cycles // 2:
            _seal(root, journal, verified)
    _seal(root, journal, verified)
    seen["records"] = len(verified)
    seen["unacknowledged but kept"] = len(verified) - len(journal.acked)
    seen["left .new files"] = len(list(root.glob("segments/*/*/.*.new")))
    return journal, seen


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """Issue 3, first must-show: 100 SIGKILLs of a sync-mode writer."""
    root = tmp_path / "log"
    journal, seen = _kill_cycles(root, tmp_path, "sync", cycles=100, seed=SEED)
    print(f"sync, 100 kills: {dict(seen)}")
    assert seen["killed inside an append"] >= 20, seen  # the kills did land under load
    assert len(journal.acked) >= 1000, seen


@pytest.mark.slow
def test_sigkill_in_batch_mode_loses_nothing_a_process_crash_can_lose(tmp_path: Path) -> None:
    """Batch mode's documented promise: a process crash loses nothing acknowledged."""
    root = tmp_path / "log"
    journal, seen = _kill_cycles(root, tmp_path, "batch", cycles=25, seed=SEED + 1)
    print(f"batch, 25 kills: {dict(seen)}")
    assert len(journal.acked) >= 250, seen


def _appender(root: str, k: int, n: int, size: int, barrier: Any) -> None:
    book = Logbook(root)
    try:
        barrier.wait(timeout=60)
        for start in range(0, n, size):
            seqs = list(range(start, min(start + size, n)))
            book.append_frame(MODEL, 1, {"writer": [k] * len(seqs), "seq": seqs},
                              {"prediction": [k] * len(seqs)})
    finally:
        book.close()


@pytest.mark.slow
def test_four_processes_appending_at_once_count_exactly(tmp_path: Path) -> None:
    """Issue 3, second must-show."""
    root, n, size = tmp_path / "log", 3000, 20
    barrier = CTX.Barrier(4)
    procs = [CTX.Process(target=_appender, args=(str(root), k, n, size, barrier))
             for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    book = Logbook(root)
    try:
        def census() -> list[tuple[Any, ...]]:
            return book.query(
                "SELECT writer, count(*), count(DISTINCT request_id), count(DISTINCT seq), "
                "min(seq), max(seq) FROM predictions GROUP BY writer ORDER BY writer"
            ).to_pylist()

        expected = [{"writer": k, "count_star()": n, "count(DISTINCT request_id)": n,
                     "count(DISTINCT seq)": n, "min(seq)": 0, "max(seq)": n - 1}
                    for k in range(4)]
        assert census() == expected
        total = book.query("SELECT count(*) AS n, count(DISTINCT request_id) AS d "
                           "FROM predictions").to_pylist()
        assert total == [{"n": 4 * n, "d": 4 * n}]
        # Each process wrote its own segments.
        segments = list(root.glob("segments/predictions/*/*.seg"))
        owners = {p.stem.rsplit("-", 1)[0] for p in segments}
        assert len(owners) == 4
        for path in segments:
            writers = {w for b in read_segment(path).batches
                       for w in b.column("writer").to_pylist()}
            assert len(writers) == 1, path
        report = book.seal()
        assert (report.segments, report.rows, report.torn_tails) == (len(segments), 4 * n, 0)
        assert census() == expected
    finally:
        book.close()


def _subject_writer(root: str, start: int, n: int, ready: Any, go: Any | None) -> None:
    """Log n predictions (subjects s0..s9) with feedback by id and by subject; with ``go``,
    stay alive holding the segments until told, then log five more about s3 and close."""
    book = Logbook(root)
    try:
        subjects = [f"s{(start + i) % 10}" for i in range(n)]
        ids = book.append_frame(MODEL, 1, {"x": [float(start + i) for i in range(n)]},
                                {"prediction": [i % 2 for i in range(n)]}, subjects=subjects)
        book.add_feedback(MODEL, [i % 2 for i in range(0, n, 3)], request_ids=ids[::3])
        book.add_feedback(MODEL, [1] * 10, subjects=[f"s{i}" for i in range(10)],
                          event_ts=[datetime.now(UTC)] * 10)
        ready.set()
        if go is not None:
            assert go.wait(timeout=60)
            later = book.append_frame(MODEL, 1, {"x": [-1.0] * 5}, {"prediction": [1] * 5},
                                      subjects=["s3"] * 5)
            book.add_feedback(MODEL, [1], request_ids=later[:1])
    finally:
        book.close()


def _census(book: Logbook) -> tuple[dict[str | None, int], dict[str | None, int]]:
    rows = book.query("SELECT subject, count(*) AS n FROM predictions GROUP BY subject")
    predictions = dict(zip(rows.column("subject").to_pylist(), rows.column("n").to_pylist(),
                           strict=True))
    rows = book.query("""
        SELECT coalesce(f.subject, p.subject) AS about, count(*) AS n
        FROM feedback f LEFT JOIN predictions p USING (request_id) GROUP BY about""")
    feedback = dict(zip(rows.column("about").to_pylist(), rows.column("n").to_pylist(),
                        strict=True))
    return predictions, feedback


@pytest.mark.slow
def test_erasure_removes_every_record_of_one_subject_and_nothing_else(tmp_path: Path) -> None:
    """Issue 3, third must-show: one writer dead (its data sealed), one alive."""
    root = tmp_path / "log"
    ready_a, ready_b, go = CTX.Event(), CTX.Event(), CTX.Event()
    dead = CTX.Process(target=_subject_writer, args=(str(root), 0, 600, ready_a, None))
    dead.start()
    dead.join(timeout=60)
    assert dead.exitcode == 0
    book = Logbook(root)
    live = CTX.Process(target=_subject_writer, args=(str(root), 600, 400, ready_b, go))
    try:
        assert book.seal().rows == 600 + 200 + 10
        live.start()
        assert ready_b.wait(timeout=60)
        predictions, feedback = _census(book)
        assert sum(predictions.values()) == 1000 and predictions["s3"] == 100
        assert None not in feedback  # every label is about someone
        s3_feedback = feedback["s3"]
        assert s3_feedback == 34 + 2  # by id (every third prediction) and by subject

        report = book.erase("s3")
        assert (report.predictions, report.feedback) == (100, s3_feedback)
        after = _census(book)
        assert after == ({k: v for k, v in predictions.items() if k != "s3"},
                         {k: v for k, v in feedback.items() if k != "s3"})

        go.set()  # the live writer logs five more predictions about s3, then closes
        live.join(timeout=60)
        assert live.exitcode == 0
        predictions_now, feedback_now = _census(book)
        assert predictions_now == {**after[0], "s3": 5}
        assert feedback_now == {**after[1], "s3": 1}

        book.seal()
        assert _census(book) == (predictions_now, feedback_now)
        raw = [s for part in root.glob("sealed/predictions/*/*/*.parquet")
               for s in pq.read_table(part, columns=["subject"]).column("subject").to_pylist()]
        assert Counter(raw) == Counter(predictions_now)
    finally:
        go.set()
        live.join(timeout=60)
        book.close()


@pytest.mark.slow
def test_sigterm_stops_a_batch_writer_with_everything_acknowledged_synced(
        tmp_path: Path) -> None:
    """D9: a writer told to stop closes the logbook; nothing acknowledged is lost and every
    segment was synced to its full length before the process exited."""
    rng = random.Random(SEED + 2)
    root, journal, verified = tmp_path / "log", Journal(), set[str]()
    progress = CTX.RawValue("q", 0)
    for cycle in range(10):
        path = tmp_path / f"journal-{cycle}"
        progress.value = 0
        child = CTX.Process(target=_writer, daemon=True,
                            args=(str(root), str(path), rng.getrandbits(32), progress, "batch"))
        child.start()
        assert child.pid is not None
        try:
            deadline = time.monotonic() + 30
            while progress.value == 0:
                assert time.monotonic() < deadline, "the writer never appended"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.020, 0.150))
            os.kill(child.pid, signal.SIGTERM)
            child.join(timeout=30)
            assert child.exitcode == 0
        finally:
            if child.exitcode is None:
                os.kill(child.pid, signal.SIGKILL)
                child.join(timeout=30)
        journal.closed = False
        journal.read(path)
        assert journal.closed
        _check(root, journal, verified)
    assert journal.acked == verified  # no append was cut short by the stop
    for segment in root.glob("segments/*/*/*.seg"):
        fd = try_lock(segment)
        assert fd is not None, "a stopped writer still holds its segment"
        os.close(fd)
        assert journal.synced[segment.name] == segment.stat().st_size, segment.name
        assert not read_segment(segment).torn_tail
