"""Logbook benchmarks: the four numbers issue 3 asks for, with a peer beside each where one exists.

Run from the repository root::

    .venv/bin/python benchmarks/logbook.py            # full sizes, 3-5 minutes on 2 cores
    .venv/bin/python benchmarks/logbook.py --quick    # a smoke run, ~30 seconds
    .venv/bin/python benchmarks/logbook.py --only query,window --json /tmp/out.json

``ingest``
    1,000,000 predictions × 60 features (50 float64, 10 categorical strings) in one ``sync``
    append, through :meth:`Logbook.append_arrow` (also in ten 100k batches) and
    :meth:`Logbook.append_frame` from pandas; peers: pyarrow writing the same table to
    Parquet, and to an Arrow IPC stream, each followed by an fsync.
``appends``
    Acknowledged single-record ``sync`` appends (:meth:`Logbook.append`) from 16 writers at
    once: 16 threads sharing one Logbook (the server's shape), and 16 processes with one
    Logbook each on the same folder; one writer alone for comparison; and the 16 threads again
    with their records coalesced into one append per fsync (what the server's micro-batcher
    does one level up). Records/s, p50/p99 latency of one append, records per fsync, CPU time
    per record, and the ceiling that the fsync latency alone sets (writers / fsync).
``query``
    avg(feature) and accuracy against late labels, grouped by version, over a day of 10M
    predictions with labels for 30% of them, through :meth:`Logbook.query`; sealed, and
    unsealed; peers: DuckDB over the sealed Parquet files directly, with the same latest-wins
    labels and with a plain join (the floor); and the same answer through
    :meth:`Logbook.predictions` with ``with_labels=True``.
``window``
    A 100,000-record window with all 69 columns through :meth:`Logbook.predictions`, as Arrow
    and as pandas, out of a day of 1M predictions; peer: DuckDB over the raw Parquet.

Each number is the median of three runs after one warm-up (the ``predictions(with_labels)``
variant of the query runs once: it is a comparison, not a target); the query and window
results also keep the CPU seconds of that run (``detail.cpu_seconds``, DuckDB's threads
included), which a busy machine disturbs far less than the wall time. Data lives in a temporary
folder under /tmp, removed at the end. Results go to ``benchmarks/results/logbook.json``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keepwell.logbook.logbook as logbook_module
from benchmarks.harness import (
    Measurement,
    Peer,
    Target,
    Timers,
    median_run,
    render,
    repeat,
    rounded,
    write_json,
)
from keepwell.logbook import Logbook, Prediction
from keepwell.logbook.records import prediction_batch
from keepwell.logbook.rows import RowLayout
from keepwell.logbook.segments import SegmentFile
from keepwell.logbook.writer import LogWriter

MODEL = "bench"
DAY = datetime(2025, 6, 1, tzinfo=UTC)
SECTIONS = ("ingest", "appends", "query", "window")
RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=None if sys.stdout.isatty() else 180)


@dataclass(frozen=True)
class Sizes:
    ingest_rows: int
    writers: int
    append_seconds: float
    query_rows: int
    query_slices: int
    unsealed_query_rows: int
    window_source_rows: int
    window_rows: int
    runs: int


FULL = Sizes(ingest_rows=1_000_000, writers=16, append_seconds=5.0, query_rows=10_000_000,
             query_slices=10, unsealed_query_rows=10_000_000, window_source_rows=1_000_000,
             window_rows=100_000, runs=3)
QUICK = Sizes(ingest_rows=50_000, writers=16, append_seconds=0.5, query_rows=200_000,
              query_slices=2, unsealed_query_rows=200_000, window_source_rows=50_000,
              window_rows=5_000, runs=3)


# -- data -------------------------------------------------------------------------------------

LEVELS = pa.array([f"level_{j:02d}" for j in range(20)])


def feature_table(n: int, rng: np.random.Generator, floats: int = 50, categories: int = 10
                  ) -> pa.Table:
    """``floats`` float64 columns ``x00…`` and ``categories`` string columns ``cat0…``
    (20 levels each)."""
    columns: dict[str, pa.Array | np.ndarray] = {
        f"x{i:02d}": rng.standard_normal(n) for i in range(floats)}
    for i in range(categories):
        codes = pa.array(rng.integers(0, len(LEVELS), n, dtype=np.int32))
        columns[f"cat{i}"] = pa.DictionaryArray.from_arrays(codes, LEVELS).cast(pa.string())
    return pa.table(columns)


def output_table(n: int, rng: np.random.Generator) -> pa.Table:
    score = rng.random(n)
    return pa.table({"prediction": (score > 0.5).astype(np.int64), "score": score})


def pandas_frames(features: pa.Table, outputs: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """As a model's caller holds them: floats, and categoricals with the ``category`` dtype."""
    frame = features.to_pandas()
    for name in frame.columns:
        if name.startswith("cat"):
            frame[name] = frame[name].astype("category")
    return frame, outputs.to_pandas()


def single_record(i: int) -> Prediction:
    rng = np.random.default_rng(i)
    features: dict[str, Any] = {f"x{j:02d}": float(v) for j, v in
                                enumerate(rng.standard_normal(50))}
    features.update({f"cat{j}": f"level_{int(c):02d}" for j, c in
                     enumerate(rng.integers(0, 20, 10))})
    return Prediction(MODEL, 1, features, prediction=1, scores={"score": 0.73}, latency_ms=1.5)


def timestamps(first: int, n: int, step_us: int) -> pd.DatetimeIndex:
    """``n`` evenly spaced UTC times from the ``first``-th step after midnight of :data:`DAY`."""
    start = np.datetime64(DAY.replace(tzinfo=None), "us")
    naive = start + (first + np.arange(n, dtype=np.int64)) * np.timedelta64(step_us, "us")
    return pd.DatetimeIndex(naive).tz_localize("UTC")


class Workdir:
    """Fresh folders under one temporary root, removed at the end unless kept."""

    def __init__(self, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="keepwell-bench-", dir="/tmp"))
        self.keep = keep
        self._count = 0

    def fresh(self, name: str) -> Path:
        self._count += 1
        return self.root / f"{name}-{self._count}"

    @staticmethod
    def drop(path: Path) -> None:
        """Remove a run's files and let writeback settle, so runs start alike."""
        shutil.rmtree(path, ignore_errors=True)
        os.sync()

    def close(self) -> None:
        if self.keep:
            console.print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def sealed_files(root: Path, kind: str) -> list[str]:
    return sorted(str(p) for p in (root / "sealed" / kind / MODEL).glob("*/part-*.parquet"))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- 1. ingest --------------------------------------------------------------------------------

# The pieces of one append whose time is reported (exclusive of each other).
APPEND_PIECES: tuple[tuple[object, str, str], ...] = (
    (Logbook, "append", "append (turns)"),
    (Logbook, "_records_batch", "records→tables"),
    (Logbook, "append_frame", "ids→text"),
    (logbook_module, "to_table", "to_table"),
    (logbook_module, "prediction_batch", "build batch"),
    (RowLayout, "batch", "build rows"),
    (LogWriter, "append", "writer"),
    (LogWriter, "write", "writer"),
    (LogWriter, "_sync", "group-commit wait"),
    (SegmentFile, "append", "serialize"),
    (SegmentFile, "_write_frame", "crc32"),
    (SegmentFile, "_write", "write"),
)


def _order(parts: dict[str, float], total: float) -> dict[str, float]:
    names = [name for _, _, name in APPEND_PIECES] + ["fsync"]
    ordered = {name: parts[name] for name in names if parts.get(name)}
    ordered["other"] = max(total - sum(ordered.values()), 0.0)
    return {k: rounded(v) for k, v in ordered.items()}


def bench_ingest(sizes: Sizes, work: Workdir, rng: np.random.Generator) -> list[Measurement]:
    n = sizes.ingest_rows
    features, outputs = feature_table(n, rng), output_table(n, rng)
    frame, frame_outputs = pandas_frames(features, outputs)
    timers = Timers()
    timed_fsync = timers.wrap("fsync", os.fsync)

    def keepwell_run(append: Callable[[Logbook], None]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            root = work.fresh("ingest")
            book = Logbook(root, fsync=timed_fsync)
            with timers.patched(*APPEND_PIECES):
                start = time.perf_counter()
                append(book)
                seconds = time.perf_counter() - start
                parts = dict(timers.totals)
            book.close()
            work.drop(root)
            return {"seconds": seconds, "parts": _order(parts, seconds)}
        return run

    def one_arrow(book: Logbook) -> None:
        book.append_arrow(MODEL, 1, features, outputs)

    def chunked_arrow(book: Logbook) -> None:
        step = max(n // 10, 1)
        for lo in range(0, n, step):
            book.append_arrow(MODEL, 1, features.slice(lo, step), outputs.slice(lo, step))

    def one_frame(book: Logbook) -> None:
        book.append_frame(MODEL, 1, frame, frame_outputs)

    # The peers write the very table keepwell stores (ids and times included), then sync it.
    stored = pa.Table.from_batches([prediction_batch(MODEL, 1, features, outputs)])

    def parquet_run() -> dict[str, Any]:
        root = work.fresh("ingest-parquet")
        root.mkdir()
        start = time.perf_counter()
        pq.write_table(stored, root / "part.parquet")
        fsync_path(root / "part.parquet")
        seconds = time.perf_counter() - start
        work.drop(root)
        return {"seconds": seconds}

    def ipc_run() -> dict[str, Any]:
        root = work.fresh("ingest-ipc")
        root.mkdir()
        start = time.perf_counter()
        with pa.OSFile(str(root / "part.arrows"), "wb") as sink, \
                pa.ipc.new_stream(sink, stored.schema) as writer:
            writer.write_table(stored)
        fsync_path(root / "part.arrows")
        seconds = time.perf_counter() - start
        work.drop(root)
        return {"seconds": seconds}

    runs = {}
    for name, run in (("arrow", keepwell_run(one_arrow)), ("arrow_chunks", keepwell_run(
            chunked_arrow)), ("pandas", keepwell_run(one_frame)), ("parquet", parquet_run),
            ("ipc", ipc_run)):
        console.log(f"ingest: {name}")
        runs[name] = repeat(run, runs=sizes.runs)

    def rate(name: str) -> float:
        return float(n / median_run(runs[name])["seconds"])

    def rates(name: str) -> list[float]:
        return [rounded(n / r["seconds"]) for r in runs[name]]

    parquet = Peer("pyarrow.parquet.write_table + fsync", rounded(rate("parquet")),
                   rounded(rate("arrow") / rate("parquet"), 3))
    ipc = Peer("pyarrow IPC stream + fsync", rounded(rate("ipc")),
               rounded(rate("arrow") / rate("ipc"), 3))
    target = Target("at_least", 500_000)
    label = f"{n:,} × 60"
    detail = {"rows": n, "stored_bytes": stored.nbytes, "ipc_peer": ipc.__dict__}
    return [
        Measurement("ingest.append_arrow", f"ingest {label}: append_arrow, one batch",
                    rounded(rate("arrow")), "records/s", rates("arrow"), target, parquet,
                    median_run(runs["arrow"])["parts"], detail),
        Measurement("ingest.append_arrow_10_batches",
                    f"ingest {label}: append_arrow, 10 batches",
                    rounded(rate("arrow_chunks")), "records/s", rates("arrow_chunks"), target,
                    Peer(parquet.name, parquet.value,
                         rounded(rate("arrow_chunks") / rate("parquet"), 3)),
                    median_run(runs["arrow_chunks"])["parts"]),
        Measurement("ingest.append_frame", f"ingest {label}: append_frame (pandas)",
                    rounded(rate("pandas")), "records/s", rates("pandas"), target,
                    Peer(parquet.name, parquet.value,
                         rounded(rate("pandas") / rate("parquet"), 3)),
                    median_run(runs["pandas"])["parts"]),
        Measurement("ingest.peer_ipc", f"  peer: {ipc.name}", ipc.value, "records/s",
                    rates("ipc")),
    ]


def fsync_latency_ms(root: Path, count: int = 50) -> float:
    """The median fsync of a 1 KiB append on the benchmark's file system."""
    path = root / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(count):
            os.write(fd, bytes(1024))
            start = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return rounded(float(np.median(samples)) * 1000, 3)


# -- 2. acknowledged single-record appends ---------------------------------------------------

def _append_loop(append: Callable[[Prediction], object], record: Prediction, seconds: float
                 ) -> tuple[int, float, np.ndarray]:
    latencies: list[float] = []
    start = now = time.perf_counter()
    deadline = start + seconds
    while now < deadline:
        before = time.perf_counter()
        append(record)
        now = time.perf_counter()
        latencies.append(now - before)
    return len(latencies), now - start, np.asarray(latencies)


def _summarise(results: list[tuple[int, float, np.ndarray]], syncs: int, cpu_seconds: float
               ) -> dict[str, Any]:
    """Rate, latency percentiles, records per fsync, and CPU time (user + system, all
    threads) per record: the number that a loaded machine disturbs least."""
    count = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    latencies = np.concatenate([r[2] for r in results])
    return {"rate": count / elapsed, "appends": count, "seconds": elapsed,
            "p50_ms": float(np.percentile(latencies, 50)) * 1000,
            "p99_ms": float(np.percentile(latencies, 99)) * 1000,
            "records_per_fsync": count / syncs if syncs else None,
            "cpu_us_per_record": cpu_seconds / count * 1e6}


class _CountingFsync:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        os.fsync(fd)
        with self._lock:
            self.count += 1


class Coalescer:
    """Single-record appends from many threads, logged together: the first waiting appender
    leads, logging every record queued meanwhile in one :meth:`Logbook.append` (one batch,
    one write, one fsync) and waking their appenders. The server's micro-batcher does the same
    one level up; this measures what the logbook gives when appends arrive that way."""

    def __init__(self, book: Logbook) -> None:
        self.book = book
        self._lock = threading.Lock()
        self._queue: list[tuple[Prediction, threading.Event, list[str]]] = []
        self._leading = False

    def append(self, record: Prediction) -> str:
        slot: tuple[Prediction, threading.Event, list[str]] = (record, threading.Event(), [])
        with self._lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if lead:
            while True:
                with self._lock:
                    batch, self._queue = self._queue, []
                    if not batch:
                        self._leading = False
                        break
                try:
                    ids = self.book.append([r for r, _, _ in batch])
                finally:
                    for (_, done, out), rid in zip(batch, ids, strict=True):
                        out.append(rid)
                        done.set()
        slot[1].wait()
        return slot[2][0]


def _thread_rounds(root: Path, writers: int, seconds: float, rounds: int, *,
                   coalesce: bool = False) -> list[dict[str, Any]]:
    syncs = _CountingFsync()
    book = Logbook(root, fsync=syncs)
    for i in range(writers):  # the segment exists and every code path is warm
        book.append(single_record(i))
    append = Coalescer(book).append if coalesce else book.append
    barrier = threading.Barrier(writers + 1)
    results: list[list[Any]] = [[None] * writers for _ in range(rounds)]

    def writer(i: int) -> None:
        record = single_record(i)
        for r in range(rounds):
            barrier.wait()
            results[r][i] = _append_loop(append, record, seconds)
            barrier.wait()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    summaries = []
    for r in range(rounds):
        before, cpu = syncs.count, time.process_time()
        barrier.wait()
        barrier.wait()
        summaries.append(_summarise(results[r], syncs.count - before,
                                    time.process_time() - cpu))
    for t in threads:
        t.join()
    book.close()
    return summaries


def _single_writer_rounds(root: Path, seconds: float, rounds: int
                          ) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """One writer in this thread, with the time of each piece of an append."""
    timers = Timers()
    syncs = _CountingFsync()
    book = Logbook(root, fsync=timers.wrap("fsync", syncs))
    record = single_record(0)
    book.append(record)
    summaries, parts = [], []
    for _ in range(rounds):
        before, cpu = syncs.count, time.process_time()
        with timers.patched(*APPEND_PIECES):
            result = _append_loop(book.append, record, seconds)
            totals = dict(timers.totals)
        summaries.append(_summarise([result], syncs.count - before, time.process_time() - cpu))
        per_append = {k: v / result[0] * 1e6 for k, v in _order(totals, result[1]).items()}
        parts.append({k: rounded(v, 3) for k, v in per_append.items()})
    book.close()
    return summaries, parts


def _process_writer(root: str, index: int, seconds: float, rounds: int, barrier: Any,
                    queue: Any) -> None:
    """One writer process: its own Logbook on the shared folder."""
    syncs = _CountingFsync()
    book = Logbook(root, fsync=syncs)
    record = single_record(index)
    book.append(record)
    for r in range(rounds):
        barrier.wait()
        before, cpu = syncs.count, time.process_time()
        count, elapsed, latencies = _append_loop(book.append, record, seconds)
        queue.put((r, index, count, elapsed, latencies.astype(np.float64).tobytes(),
                   syncs.count - before, time.process_time() - cpu))
    book.close()


def _process_rounds(root: Path, writers: int, seconds: float, rounds: int
                    ) -> list[dict[str, Any]]:
    # A fork server that has imported keepwell once starts 16 writers in about a second; spawn
    # would import it 16 times over on two cores. Forking this process instead is unsafe: it
    # has threads (DuckDB's, and the benchmark's own).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "pyarrow", "pandas", "duckdb", "keepwell.logbook"])
    barrier = ctx.Barrier(writers)
    queue = ctx.Queue()
    processes = [ctx.Process(target=_process_writer,
                             args=(str(root), i, seconds, rounds, barrier, queue))
                 for i in range(writers)]
    for p in processes:
        p.start()
    by_round: list[list[Any]] = [[] for _ in range(rounds)]
    syncs = [0] * rounds
    cpu = [0.0] * rounds
    for _ in range(rounds * writers):
        r, _index, count, elapsed, latencies, fsyncs, seconds_cpu = queue.get(timeout=600)
        by_round[r].append((count, elapsed, np.frombuffer(latencies)))
        syncs[r] += fsyncs
        cpu[r] += seconds_cpu
    for p in processes:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a writer process exited with {p.exitcode}")
    return [_summarise(by_round[r], syncs[r], cpu[r]) for r in range(rounds)]


def _append_measurement(key: str, label: str, rounds: list[dict[str, Any]], writers: int,
                        fsync_ms: float, breakdown: dict[str, float] | None = None
                        ) -> Measurement:
    """Records/s of the median round. ``ceiling`` is what ``writers`` closed-loop writers could
    reach if an append cost nothing but one shared fsync: writers / fsync latency."""
    measured = rounds[1:]  # the first round is the warm-up
    middle = median_run(measured, "rate")
    p50 = rounded(float(np.median([r["p50_ms"] for r in measured])), 3)
    p99 = rounded(float(np.median([r["p99_ms"] for r in measured])), 3)
    per_sync = rounded(middle["records_per_fsync"] or 0, 3)
    ceiling = rounded(writers / fsync_ms * 1000, 3)
    cpu_us = rounded(float(np.median([r["cpu_us_per_record"] for r in measured])), 3)
    return Measurement(
        key, label, rounded(middle["rate"]), "records/s",
        [rounded(r["rate"]) for r in measured],
        Target("at_least", 5_000) if writers > 1 else None,
        breakdown=breakdown or {}, breakdown_unit="µs per append",
        detail={"writers": writers, "p50_ms": p50, "p99_ms": p99,
                "records_per_fsync": per_sync, "cpu_us_per_record": cpu_us,
                "fsync_1kib_ms": fsync_ms,
                "ceiling": ceiling,
                "runs": [{k: rounded(v, 4) if isinstance(v, float) else v
                          for k, v in r.items()} for r in measured]},
        note=f"p50 {p50:.3g} ms, p99 {p99:.3g} ms; {per_sync:.3g} records/fsync; "
             f"CPU {cpu_us:,.0f} µs/record; {writers}/fsync = {ceiling:,.0f}/s")


def bench_appends(sizes: Sizes, work: Workdir, rng: np.random.Generator) -> list[Measurement]:
    rounds = 1 + sizes.runs
    w = sizes.writers
    fsync_ms = fsync_latency_ms(work.root, 200)
    console.log("appends: 1 writer")
    root = work.fresh("appends-1")
    single, parts = _single_writer_rounds(root, sizes.append_seconds, rounds)
    work.drop(root)
    middle = parts[1:][[r["rate"] for r in single[1:]].index(median_run(single[1:],
                                                                         "rate")["rate"])]
    console.log(f"appends: {w} threads")
    root = work.fresh("appends-threads")
    threads = _thread_rounds(root, w, sizes.append_seconds, rounds)
    work.drop(root)
    console.log(f"appends: {w} threads, coalesced")
    root = work.fresh("appends-coalesced")
    coalesced = _thread_rounds(root, w, sizes.append_seconds, rounds, coalesce=True)
    work.drop(root)
    console.log(f"appends: {w} processes")
    root = work.fresh("appends-processes")
    processes = _process_rounds(root, w, sizes.append_seconds, rounds)
    check = Logbook(root)
    stored = check.query("SELECT count(*) AS n FROM predictions")["n"][0].as_py()
    expected = w + sum(r["appends"] for r in processes)
    if stored != expected:
        raise AssertionError(f"{expected} appends acknowledged, {stored} stored")
    work.drop(root)
    return [
        _append_measurement("appends.single_writer", "sync appends: 1 writer",
                            single, 1, fsync_ms, middle),
        _append_measurement("appends.threads", f"sync appends: {w} threads, one Logbook",
                            threads, w, fsync_ms),
        _append_measurement("appends.threads_coalesced",
                            f"sync appends: {w} threads, coalesced per fsync", coalesced, w,
                            fsync_ms),
        _append_measurement("appends.processes", f"sync appends: {w} processes, own Logbook",
                            processes, w, fsync_ms),
    ]


# -- 3. an aggregate over a day joined to late labels ----------------------------------------

# Through the view that carries each prediction's label (label columns once sealed).
AGGREGATE_SQL = """
SELECT version,
       count(*) AS predictions,
       avg(x00) AS mean_x00,
       count(label) AS labelled,
       avg((prediction = label)::INTEGER) AS accuracy
FROM predictions_with_labels
WHERE model = ? AND ts >= ? AND ts < ?
GROUP BY version ORDER BY version
"""

# The same, written as a join by request id: what the view saves.
HASH_JOIN_SQL = """
SELECT p.version,
       count(*) AS predictions,
       avg(p.x00) AS mean_x00,
       count(l.label) AS labelled,
       avg((p.prediction = l.label)::INTEGER) AS accuracy
FROM predictions p LEFT JOIN labels l USING (request_id)
WHERE p.model = ? AND p.ts >= ? AND p.ts < ?
GROUP BY p.version ORDER BY p.version
"""

FRESH_LABELS = 1_000

PEER_AGGREGATE_SQL = """
WITH labels AS (
    SELECT request_id, arg_max(label, (received_ts, feedback_id)) AS label
    FROM read_parquet({feedback}) WHERE request_id IS NOT NULL GROUP BY request_id
)
SELECT p.version, count(*) AS predictions, avg(p.x00) AS mean_x00,
       count(l.label) AS labelled, avg((p.prediction = l.label)::INTEGER) AS accuracy
FROM read_parquet({predictions}) p LEFT JOIN labels l USING (request_id)
WHERE p.ts >= ? AND p.ts < ?
GROUP BY p.version ORDER BY p.version
"""

# The floor: one label per prediction assumed, so no latest-wins step at all.
PLAIN_JOIN_SQL = """
SELECT p.version, count(*) AS predictions, avg(p.x00) AS mean_x00,
       count(f.label) AS labelled, avg((p.prediction = f.label)::INTEGER) AS accuracy
FROM read_parquet({predictions}) p LEFT JOIN read_parquet({feedback}) f USING (request_id)
WHERE p.ts >= ? AND p.ts < ?
GROUP BY p.version ORDER BY p.version
"""

ERROR_RATE = {1: 0.12, 2: 0.18}


def _fill_day(book: Logbook, n: int, slices: int, rng: np.random.Generator,
              features: Callable[[int], pa.Table]) -> tuple[pa.Array, np.ndarray]:
    """``n`` predictions evenly over :data:`DAY` in ``slices`` time-ordered slices, versions 1
    and 2 alternating; returns the ids and labels of a random 30% of them."""
    step_us = 86_400_000_000 // n
    per_slice = n // slices
    chosen, labels = [], []
    for k in range(slices):
        times = timestamps(k * per_slice, per_slice, step_us)
        for version in (1, 2):
            rows = times[version - 1::2]
            outputs = output_table(len(rows), rng)
            ids = book.append_arrow(MODEL, version, features(len(rows)), outputs, ts=rows,
                                    arm="champion" if version == 1 else "challenger")
            pick = rng.random(len(rows)) < 0.3
            predicted = outputs["prediction"].to_numpy()[pick]
            wrong = rng.random(len(predicted)) < ERROR_RATE[version]
            chosen.append(ids.filter(pa.array(pick)))
            labels.append(np.where(wrong, 1 - predicted, predicted))
    return pa.concat_arrays(chosen), np.concatenate(labels)


def _check_aggregate(table: pa.Table, n: int, labelled: int) -> None:
    rows = table.to_pylist()
    if sum(r["predictions"] for r in rows) != n or sum(r["labelled"] for r in rows) != labelled:
        raise AssertionError(f"aggregate counts are off: {rows}")
    for r in rows:
        if abs(r["accuracy"] - (1 - ERROR_RATE[r["version"]])) > 0.02:
            raise AssertionError(f"accuracy is off: {rows}")


def _same_aggregate(a: pa.Table, b: pa.Table) -> None:
    """The same numbers, up to the order in which floats were summed."""
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        if any(not math.isclose(x[k], y[k], rel_tol=1e-9, abs_tol=1e-12) for k in x):
            raise AssertionError(f"the aggregates disagree: {x} vs {y}")


def _timed(fn: Callable[[], Any]) -> Callable[[], dict[str, Any]]:
    """Wall time, and the CPU time of this process (DuckDB's threads included): the number a
    busy machine disturbs least."""
    def run() -> dict[str, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        return {"seconds": time.perf_counter() - start, "result": result,
                "cpu_seconds": time.process_time() - cpu}
    return run


def _seconds(results: list[dict[str, Any]]) -> list[float]:
    return [rounded(r["seconds"]) for r in results]


def bench_query(sizes: Sizes, work: Workdir, rng: np.random.Generator) -> list[Measurement]:
    n = sizes.query_rows
    root = work.fresh("query")
    book = Logbook(root)
    params = [MODEL, DAY, DAY + timedelta(days=1)]
    console.log(f"query: logging {n:,} predictions")
    start = time.perf_counter()
    ids, labels = _fill_day(book, n, sizes.query_slices, rng,
                            lambda m: feature_table(m, rng, floats=4, categories=1))
    fill_seconds = time.perf_counter() - start
    start = time.perf_counter()
    feedback = book.add_feedback(MODEL, labels, request_ids=ids)
    feedback_seconds = time.perf_counter() - start
    if feedback.unmatched:
        raise AssertionError(f"{feedback.unmatched} labels did not match")
    book.writer.rotate()

    def aggregate(sql: str = AGGREGATE_SQL) -> pa.Table:
        return book.query(sql, params, model=MODEL)

    unsealed: list[dict[str, Any]] = []
    if n <= sizes.unsealed_query_rows:
        console.log("query: unsealed")
        unsealed = repeat(_timed(aggregate), runs=sizes.runs)
        _check_aggregate(unsealed[0]["result"], n, len(labels))
    console.log("query: sealing")
    start = time.perf_counter()
    report = book.seal()
    seal_seconds = time.perf_counter() - start
    os.sync()
    console.log("query: sealed")
    sealed = repeat(_timed(aggregate), runs=sizes.runs)
    _check_aggregate(sealed[0]["result"], n, len(labels))
    hashed = repeat(_timed(lambda: aggregate(HASH_JOIN_SQL)), runs=sizes.runs)
    _check_aggregate(hashed[0]["result"], n, len(labels))
    _same_aggregate(hashed[0]["result"], sealed[0]["result"])

    files = {"feedback": _sql_list(sealed_files(root, "feedback")),
             "predictions": _sql_list(sealed_files(root, "predictions"))}

    def duckdb_query(sql: str) -> Callable[[], pa.Table]:
        def run() -> pa.Table:
            with duckdb.connect() as con:
                return con.sql(sql.format(**files), params=params[1:]).to_arrow_table()
        return run

    console.log("query: peer")
    peer_runs = repeat(_timed(duckdb_query(PEER_AGGREGATE_SQL)), runs=sizes.runs)
    _check_aggregate(peer_runs[0]["result"], n, len(labels))
    plain_runs = repeat(_timed(duckdb_query(PLAIN_JOIN_SQL)), runs=sizes.runs)
    _check_aggregate(plain_runs[0]["result"], n, len(labels))

    console.log("query: through predictions(with_labels=True)")

    def through_predictions() -> pa.Table:
        table = book.predictions(MODEL, start=DAY, end=DAY + timedelta(days=1),
                                 columns=["version", "prediction", "x00"], with_labels=True)
        return table.group_by("version").aggregate([("x00", "mean"), ("label", "count")])

    frame_runs = repeat(_timed(through_predictions), runs=1, warmup=0)

    # Labels that arrive after the seal, for the newest predictions, stay unsealed: the parts
    # that may hold their requests are joined by id, the others read beside label columns.
    console.log(f"query: {FRESH_LABELS:,} fresh labels")
    newest = book.predictions(MODEL, last=FRESH_LABELS, columns=["request_id"])["request_id"]
    book.add_feedback(MODEL, [1] * FRESH_LABELS, request_ids=newest)
    fresh = repeat(_timed(aggregate), runs=sizes.runs)
    _same_aggregate(aggregate(HASH_JOIN_SQL), fresh[0]["result"])
    book.close()
    work.drop(root)

    sealed_s = median_run(sealed)["seconds"]
    peer_s = median_run(peer_runs)["seconds"]
    detail = {"rows": n, "labels": len(labels), "log_seconds": rounded(fill_seconds),
              "cpu_seconds": rounded(median_run(sealed)["cpu_seconds"]),
              "add_feedback_seconds": rounded(feedback_seconds),
              "seal_seconds": rounded(seal_seconds), "sealed_files": report.files,
              "result": [{k: rounded(v) if isinstance(v, float) else v for k, v in r.items()}
                         for r in sealed[0]["result"].to_pylist()]}
    label = f"aggregate ⋈ labels, 1 day of {n / 1e6:g}M"
    results = [
        Measurement("query.sealed", f"{label}: sealed", rounded(sealed_s), "s",
                    _seconds(sealed), Target("below", 1.0),
                    Peer("DuckDB over the Parquet", rounded(peer_s), rounded(sealed_s / peer_s,
                                                                             3)),
                    detail=detail),
        Measurement("query.sealed_fresh",
                    f"{label}: sealed, {FRESH_LABELS:,} labels since",
                    rounded(median_run(fresh)["seconds"]), "s", _seconds(fresh),
                    Target("below", 1.0)),
        Measurement("query.sealed_hash_join", f"{label}: sealed, joined by request id",
                    rounded(median_run(hashed)["seconds"]), "s", _seconds(hashed)),
    ]
    if unsealed:
        results.append(Measurement("query.unsealed", f"{label}: unsealed",
                                   rounded(median_run(unsealed)["seconds"]), "s",
                                   _seconds(unsealed), Target("below", 1.0), detail={
                                       "cpu_seconds": rounded(
                                           median_run(unsealed)["cpu_seconds"])}))
    results.append(Measurement(
        "query.peer_plain_join", "  peer: DuckDB, plain join (no latest-wins step)",
        rounded(median_run(plain_runs)["seconds"]), "s", _seconds(plain_runs)))
    results.append(Measurement(
        "query.via_predictions", f"{label}: predictions(with_labels) + group_by",
        rounded(frame_runs[0]["seconds"]), "s", _seconds(frame_runs)))
    return results


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


# -- 4. loading a window ----------------------------------------------------------------------

def bench_window(sizes: Sizes, work: Workdir, rng: np.random.Generator) -> list[Measurement]:
    n, w = sizes.window_source_rows, sizes.window_rows
    root = work.fresh("window")
    book = Logbook(root)
    step_us = 86_400_000_000 // n
    chunk = max(n // 10, 1)
    console.log(f"window: logging {n:,} predictions × 60 features")
    for lo in range(0, n, chunk):
        book.append_arrow(MODEL, 1, feature_table(chunk, rng), output_table(chunk, rng),
                          ts=timestamps(lo, chunk, step_us))
    book.writer.rotate()
    start = DAY + timedelta(microseconds=step_us * (4 * n // 10))
    end = start + timedelta(microseconds=step_us * w)

    def arrow() -> pa.Table:
        return book.predictions(MODEL, start=start, end=end)

    def frame() -> pd.DataFrame:
        frame: pd.DataFrame = book.predictions(MODEL, start=start, end=end).to_pandas()
        return frame

    def check(table: pa.Table | pd.DataFrame) -> None:
        if table.shape != (w, 69):
            raise AssertionError(f"the window has shape {table.shape}, not {(w, 69)}")

    console.log("window: unsealed")
    unsealed = repeat(_timed(arrow), runs=sizes.runs)
    check(unsealed[0]["result"])
    console.log("window: sealing")
    seal_start = time.perf_counter()
    book.seal()
    seal_seconds = time.perf_counter() - seal_start
    os.sync()
    console.log("window: sealed")
    sealed = repeat(_timed(arrow), runs=sizes.runs)
    check(sealed[0]["result"])
    sealed_pandas = repeat(_timed(frame), runs=sizes.runs)
    check(sealed_pandas[0]["result"])

    files = _sql_list(sealed_files(root, "predictions"))
    peer_sql = (f"SELECT * FROM read_parquet({files}) WHERE ts >= ? AND ts < ? "
                "ORDER BY ts, request_id")

    def peer_arrow() -> pa.Table:
        with duckdb.connect() as con:
            return con.sql(peer_sql, params=[start, end]).to_arrow_table()

    def peer_frame() -> pd.DataFrame:
        with duckdb.connect() as con:
            frame: pd.DataFrame = con.sql(peer_sql, params=[start, end]).df()
            return frame

    peer_a = repeat(_timed(peer_arrow), runs=sizes.runs)
    check(peer_a[0]["result"])
    peer_p = repeat(_timed(peer_frame), runs=sizes.runs)
    check(peer_p[0]["result"])
    book.close()
    work.drop(root)

    def seconds(results: list[dict[str, Any]]) -> float:
        return rounded(median_run(results)["seconds"])

    label = f"window {w:,} × 69 of {n / 1e6:g}M"
    target = Target("below", 0.5)
    detail = {"source_rows": n, "window_rows": w, "seal_seconds": rounded(seal_seconds),
              "cpu_seconds": rounded(median_run(sealed)["cpu_seconds"])}
    return [
        Measurement("window.arrow", f"{label}: sealed → Arrow", seconds(sealed), "s",
                    _seconds(sealed), target,
                    Peer("DuckDB over the Parquet → Arrow", seconds(peer_a),
                         rounded(seconds(sealed) / seconds(peer_a), 3)), detail=detail),
        Measurement("window.pandas", f"{label}: sealed → pandas", seconds(sealed_pandas), "s",
                    _seconds(sealed_pandas), target,
                    Peer("DuckDB over the Parquet → .df()", seconds(peer_p),
                         rounded(seconds(sealed_pandas) / seconds(peer_p), 3))),
        Measurement("window.unsealed_arrow", f"{label}: unsealed → Arrow", seconds(unsealed),
                    "s", _seconds(unsealed), target),
    ]


# -- running ----------------------------------------------------------------------------------

BENCHMARKS: dict[str, Callable[[Sizes, Workdir, np.random.Generator], list[Measurement]]] = {
    "ingest": bench_ingest, "appends": bench_appends, "query": bench_query,
    "window": bench_window}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                        "benchmarks/results/logbook.json, or logbook-quick.json with --quick)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections out of {', '.join(SECTIONS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    output = args.json or RESULTS / ("logbook-quick.json" if args.quick else "logbook.json")

    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        console.print(f"[yellow]the machine is busy (load average {load_before[0]:.1f}): "
                      "numbers will be lower and noisier than on an idle machine.[/]")
    work = Workdir(args.keep)
    measurements: list[Measurement] = []
    started = time.perf_counter()
    try:
        fsync_ms = fsync_latency_ms(work.root)
        for section in sections:
            measurements += BENCHMARKS[section](sizes, work, np.random.default_rng(7))
    finally:
        work.close()
    total = time.perf_counter() - started
    render(f"keepwell logbook benchmarks ({mode}, {os.cpu_count()} cores, "
           f"{total:.0f} s; fsync of a 1 KiB append: {fsync_ms} ms)", measurements,
           judged=mode == "full", console=console)
    write_json(output, "logbook", mode, measurements,
               {"sections": sections, "seconds": rounded(total),
                "load_average": {"start": [round(x, 2) for x in load_before],
                                 "end": [round(x, 2) for x in os.getloadavg()]},
                "fsync_1kib_ms": fsync_ms, "sizes": sizes.__dict__})
    console.print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
