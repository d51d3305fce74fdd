"""Batch scoring: a Parquet or CSV file through a model version, chunk by chunk, logged.

Rows stream from the input in chunks; each chunk is checked against the version's signature
(missing columns are an error; extra columns are carried through to the output untouched),
scored, written to the output and appended to the logbook with the arm ``batch``. The output
holds the input's columns plus ``request_id``, ``prediction`` and ``score`` / ``proba_<class>``.
It is written to a temporary file and renamed when complete, so a failed run leaves no
half-written output.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from keepwell.errors import ValidationError
from keepwell.logbook.ids import id_array, id_strings
from keepwell.registry.outputs import ModelOutputs, model_outputs
from keepwell.registry.signature import Signature
from keepwell.workspace import Workspace

__all__ = ["ScoreReport", "score_file"]


@dataclass(frozen=True)
class ScoreReport:
    model: str
    version: int
    rows: int
    chunks: int
    output: str


#: How a CSV column is read, by the signature's dtype, not as each block of the file suggests
#: (codes with leading zeros stay text). Integer columns are read as float64: the server takes
#: any number for them too, and a block that holds 2.5 must not fail where another did not.
_CSV_TYPES = {"boolean": pa.bool_(), "integer": pa.float64(), "float": pa.float64(),
              "category": pa.string(), "string": pa.string()}
_IO_NICENESS = 10
_CSV_COLUMN = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): (.*)")


#: Model input per chunk, when the caller does not say: big enough that a model's per-call
#: costs vanish, small enough to stay in cache (a forest scores 250k rows of 10 features 7%
#: faster a chunk than 100k, and 1M no faster).
CHUNK_BYTES = 24 << 20


def default_chunk_rows(signature: Signature) -> int:
    """Rows per chunk for :data:`CHUNK_BYTES` of float64 features, within [10k, 1M]."""
    return min(max(CHUNK_BYTES // (8 * max(len(signature.inputs), 1)), 10_000), 1_000_000)


def chunk_plan(total: int, chunk_rows: int) -> list[int]:
    """The sizes of the chunks of a file of ``total`` rows: ``chunk_rows`` each, except an
    eighth of that first and last, so that the model starts soon and the last chunk's log and
    write, which nothing overlaps, are short.

    >>> chunk_plan(1_000_000, 240_000)
    [30000, 240000, 240000, 240000, 220000, 30000]
    >>> chunk_plan(50, 240_000)
    [50]
    """
    small = max(chunk_rows // 8, 1)
    sizes, left = [], total
    if left > 2 * small:
        sizes.append(small)
        left -= small
    while left > chunk_rows + small:
        sizes.append(chunk_rows)
        left -= chunk_rows
    if left > 2 * small:
        sizes.append(left - small)
        left = small
    if left:
        sizes.append(left)
    return sizes


def _rebatched(batches: Iterator[pa.RecordBatch], sizes: Iterable[int]) -> Iterator[pa.Table]:
    """The rows of ``batches`` as tables of the given sizes (no copy: batches are sliced)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    plan = iter(sizes)
    want = next(plan, 0)
    for batch in batches:
        while batch.num_rows:
            take = min(want - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch, have = batch.slice(take), have + take
            if have == want:
                yield pa.Table.from_batches(pending)
                pending, have, want = [], 0, next(plan, 0)
    if pending:
        yield pa.Table.from_batches(pending)


def _chunks(path: Path, chunk_rows: int, signature: Signature) -> Iterator[pa.Table]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        source = pq.ParquetFile(path)
        sizes = chunk_plan(source.metadata.num_rows, chunk_rows)
        yield from _rebatched(source.iter_batches(batch_size=max(chunk_rows // 8, 1)), sizes)
    elif suffix == ".csv":
        types = {spec.name: _CSV_TYPES[spec.dtype] for spec in signature.inputs
                 if spec.dtype in _CSV_TYPES}
        try:  # the first block is read, and may fail, here
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                    convert_options=pacsv.ConvertOptions(column_types=types))
        except pa.ArrowInvalid as exc:
            with path.open(newline="", encoding="utf-8", errors="replace") as header:
                names = next(csv.reader(header), [])
            raise _csv_error(path, names, signature, exc) from None
        yield from _rebatched(_csv_batches(path, reader, signature),
                              itertools.repeat(chunk_rows))
    else:
        raise ValidationError(f"{path.name}: give a .parquet or .csv file.")


def _csv_batches(path: Path, reader: pacsv.CSVStreamingReader, signature: Signature
                 ) -> Iterator[pa.RecordBatch]:
    """The reader's batches, a value that does not parse raised as a named error."""
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _csv_error(path, reader.schema.names, signature, exc) from None


def _csv_error(path: Path, names: list[str], signature: Signature,
               exc: pa.ArrowInvalid) -> ValidationError:
    """The CSV reader's complaint, naming the column and the fix."""
    found = _CSV_COLUMN.search(str(exc))
    if found is None:
        return ValidationError(f"{path.name} could not be read as CSV: {exc}")
    index, detail = int(found[1]), found[3]
    name = names[index] if index < len(names) else f"#{index}"
    dtype = next((s.dtype for s in signature.inputs if s.name == name), found[2])
    return ValidationError(
        f"{path.name}: column {name!r} must hold {dtype} values, as in the model's signature, "
        f"but holds an {detail}; correct or drop those rows.")


def _features(chunk: pa.Table, signature: Signature) -> pd.DataFrame:
    missing = [n for n in signature.feature_names if n not in chunk.column_names]
    if missing:
        raise ValidationError(f"the input lacks the model's feature(s) {', '.join(missing[:5])}.")
    for spec in signature.inputs:
        kind = chunk.schema.field(spec.name).type
        if spec.dtype in ("integer", "float") and not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_null(kind)):
            shown = "text" if pa.types.is_string(kind) or pa.types.is_large_string(kind) \
                else str(kind)
            raise ValidationError(
                f"column {spec.name!r} is {shown} in the input, but the model's signature says "
                f"{spec.dtype}; convert the column to numbers.")
    frame: pd.DataFrame = chunk.select(signature.feature_names).to_pandas()
    for spec in signature.inputs:
        if spec.dtype == "category":
            frame[spec.name] = pd.Categorical(frame[spec.name].astype("string").astype(object),
                                              categories=list(spec.categories or ()))
    # Plain labels: scikit-learn reads them as a numpy array on every call, which is a
    # conversion for pandas' Arrow-backed string index.
    frame.columns = pd.Index(signature.feature_names, dtype=object)
    return frame


def score_file(ws: Workspace, ref: str, source: str | os.PathLike[str],
               target: str | os.PathLike[str], *, chunk_rows: int | None = None,
               progress: Callable[[int], None] | None = None) -> ScoreReport:
    """Score ``source`` with the version ``ref`` names and write ``target``.

    The main thread only calls the model and draws request ids. Around it, one thread reads
    and converts the next chunk, and two more log the scored chunk and write it to the
    output, each in chunk order (Arrow, Parquet and the file system release the GIL), so a
    model whose own work dominates runs at nearly its bare speed. The model is called once
    per chunk when its predictions follow from its probabilities
    (:mod:`keepwell.registry.outputs`).
    """
    version = ws.registry.get_version(ref)
    model = ws.registry.load_model(version.ref)
    signature = version.signature
    chunk_rows = chunk_rows or default_chunk_rows(signature)
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValidationError(f"{target.name}: the output must be .parquet or .csv.")
    tmp = target.with_name(f".{target.name}.partial")
    sink = _Output(tmp, csv=target.suffix.lower() == ".csv")
    rows = chunks = 0
    try:
        # The log is staged: if anything fails, no prediction of this run is kept either.
        with ws.logbook.staged_predictions(version.model) as append_arrow, \
                _thread("read") as read, _thread("log") as log, _thread("out") as out:
            pending: list[Future[Any]] = []
            for chunk, features in _prefetched(read, _chunks(source, chunk_rows, signature),
                                               signature):
                outputs = model_outputs(model, features, signature.task)
                ids = id_array(chunk.num_rows)
                for done in pending:
                    done.result()  # in order, and an error stops the run
                pending = [log.submit(_log, append_arrow, version.version, features, outputs, ids),
                           out.submit(sink.write, chunk, ids, outputs)]
                rows += chunk.num_rows
                chunks += 1
                if progress is not None:
                    progress(chunk.num_rows)
            for done in pending:
                done.result()
            if chunks == 0:
                raise ValidationError(f"{source.name} has no rows.")
            sink.close()
        os.replace(tmp, target)
    finally:
        sink.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return ScoreReport(version.model, version.version, rows, chunks, str(target))


def _log(append_arrow: Callable[..., pa.Array], version: int, features: pd.DataFrame,
         outputs: ModelOutputs, ids: pa.Array) -> None:
    """Stage a scored chunk (on the log thread: the conversions stay off the model's)."""
    append_arrow(version, pa.Table.from_pandas(features, preserve_index=False),
                 outputs.to_arrow(), arm="batch", request_ids=ids)


def _thread(name: str) -> ThreadPoolExecutor:
    """One io thread, at a lower priority than the model's: on a machine with few cores the
    scheduler then never halves the model's share to run io work that can wait."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"keepwell-score-{name}",
                              initializer=_lower_priority)


def _lower_priority() -> None:
    """Ten steps nicer than the thread that started it (Linux: a thread has its own nice)."""
    with contextlib.suppress(OSError, AttributeError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me,
                       min(os.getpriority(os.PRIO_PROCESS, me) + _IO_NICENESS, 19))


def _prefetched(pool: ThreadPoolExecutor, chunks: Iterator[pa.Table], signature: Signature
                ) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
    """Each chunk with its model input, the next one read and converted on ``pool`` while
    the caller works on this one (one chunk ahead: memory stays at two chunks)."""
    def load() -> tuple[pa.Table, pd.DataFrame] | None:
        chunk = next(chunks, None)
        return None if chunk is None else (chunk, _features(chunk, signature))

    ahead = pool.submit(load)
    while (loaded := ahead.result()) is not None:
        ahead = pool.submit(load)
        yield loaded


class _Output:
    """The output file: each scored chunk with its request ids and the model's outputs."""

    def __init__(self, path: Path, *, csv: bool) -> None:
        self.path, self.csv = path, csv
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, chunk: pa.Table, ids: pa.Array, outputs: ModelOutputs) -> None:
        out = chunk.append_column("request_id", id_strings(ids))
        for name, values in outputs.columns().items():
            out = out.append_column(name, pa.array(values))
        if self.writer is None:
            # Dictionaries pay off for labels and codes, not for measurements or ids: encoding
            # a float column's page as a dictionary first costs more than zstd, and is dropped.
            dictionary = [f.name for f in out.schema if f.name != "request_id"
                          and not pa.types.is_floating(f.type)]
            self.writer = pacsv.CSVWriter(self.path, out.schema) if self.csv else \
                pq.ParquetWriter(self.path, out.schema, compression="zstd",
                                 use_dictionary=dictionary)
        self.writer.write_table(out)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
