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
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from keepwell.errors import ValidationError
from keepwell.logbook.ids import id_strings
from keepwell.registry.evaluation import model_outputs
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


def _chunks(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        source = pq.ParquetFile(path)
        for batch in source.iter_batches(batch_size=chunk_rows):
            yield pa.Table.from_batches([batch])
    elif suffix == ".csv":
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24))
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            if size >= chunk_rows:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
        if pending:
            yield pa.Table.from_batches(pending)
    else:
        raise ValidationError(f"{path.name}: give a .parquet or .csv file.")


def _features(chunk: pa.Table, signature: Signature) -> pd.DataFrame:
    missing = [n for n in signature.feature_names if n not in chunk.column_names]
    if missing:
        raise ValidationError(f"the input lacks the model's feature(s) {', '.join(missing[:5])}.")
    frame: pd.DataFrame = chunk.select(signature.feature_names).to_pandas()
    for spec in signature.inputs:
        if spec.dtype == "category":
            frame[spec.name] = pd.Categorical(frame[spec.name].astype("string").astype(object),
                                              categories=list(spec.categories or ()))
    return frame


def score_file(ws: Workspace, ref: str, source: str | os.PathLike[str],
               target: str | os.PathLike[str], *, chunk_rows: int = 100_000,
               progress: Callable[[int], None] | None = None) -> ScoreReport:
    """Score ``source`` with the version ``ref`` names and write ``target``.

    Reading and scoring a chunk overlap with logging and writing the previous one (a second
    thread; Arrow and the file system release the GIL), so the log costs little wall time.
    """
    version = ws.registry.get_version(ref)
    model = ws.registry.load_model(version.ref)
    signature = version.signature
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValidationError(f"{target.name}: the output must be .parquet or .csv.")
    tmp = target.with_name(f".{target.name}.partial")
    sink = _Sink(ws, version.model, version.version, tmp, csv=target.suffix.lower() == ".csv")
    rows = chunks = 0
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="keepwell-score-io") as io:
            pending: Future[None] | None = None
            for chunk in _chunks(source, chunk_rows):
                features = _features(chunk, signature)
                outputs = model_outputs(model, features, signature.task)
                if pending is not None:
                    pending.result()  # in order, and an error stops the run
                pending = io.submit(sink.write, chunk, features, outputs)
                rows += chunk.num_rows
                chunks += 1
                if progress is not None:
                    progress(chunk.num_rows)
            if pending is not None:
                pending.result()
        if chunks == 0:
            raise ValidationError(f"{source.name} has no rows.")
        sink.close()
        os.replace(tmp, target)
    finally:
        sink.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return ScoreReport(version.model, version.version, rows, chunks, str(target))


class _Sink:
    """Logs a scored chunk and appends it to the output file."""

    def __init__(self, ws: Workspace, model: str, version: int, path: Path, *,
                 csv: bool) -> None:
        self.ws, self.model, self.version, self.path, self.csv = ws, model, version, path, csv
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, chunk: pa.Table, features: pd.DataFrame, outputs: pd.DataFrame) -> None:
        ids = self.ws.logbook.append_arrow(
            self.model, self.version, pa.Table.from_pandas(features, preserve_index=False),
            pa.Table.from_pandas(outputs, preserve_index=False), arm="batch")
        out = chunk.append_column("request_id", id_strings(ids))
        for name in outputs.columns:
            out = out.append_column(name, pa.array(outputs[name].to_numpy()))
        if self.writer is None:
            # Request ids are all distinct: a dictionary for them is wasted work.
            dictionary = [n for n in out.schema.names if n != "request_id"]
            self.writer = pacsv.CSVWriter(self.path, out.schema) if self.csv else \
                pq.ParquetWriter(self.path, out.schema, compression="zstd",
                                 use_dictionary=dictionary)
        self.writer.write_table(out)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
