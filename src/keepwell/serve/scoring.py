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
from keepwell.logbook.ids import id_array, id_strings
from keepwell.registry.signature import Signature
from keepwell.serve.outputs import ModelOutputs, model_outputs
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
    # Plain labels: scikit-learn reads them as a numpy array on every call, which is a
    # conversion for pandas' Arrow-backed string index.
    frame.columns = pd.Index(signature.feature_names, dtype=object)
    return frame


def score_file(ws: Workspace, ref: str, source: str | os.PathLike[str],
               target: str | os.PathLike[str], *, chunk_rows: int = 100_000,
               progress: Callable[[int], None] | None = None) -> ScoreReport:
    """Score ``source`` with the version ``ref`` names and write ``target``.

    The main thread reads, converts and scores a chunk and draws its request ids; two more
    threads log it and write it to the output, each in chunk order, while the next chunk is
    scored (Arrow, Parquet and the file system release the GIL). The model is called once per
    chunk when its predictions follow from its probabilities (:mod:`keepwell.serve.outputs`).
    """
    version = ws.registry.get_version(ref)
    model = ws.registry.load_model(version.ref)
    signature = version.signature
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ValidationError(f"{target.name}: the output must be .parquet or .csv.")
    tmp = target.with_name(f".{target.name}.partial")
    sink = _Output(tmp, csv=target.suffix.lower() == ".csv")
    rows = chunks = 0
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="keepwell-score-log") as log, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="keepwell-score-out") as out:
            pending: list[Future[None]] = []
            for chunk in _chunks(source, chunk_rows):
                features = _features(chunk, signature)
                outputs = model_outputs(model, features, signature.task)
                ids = id_array(chunk.num_rows)
                for done in pending:
                    done.result()  # in order, and an error stops the run
                pending = [
                    log.submit(_log, ws, version.model, version.version, features, outputs, ids),
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


def _log(ws: Workspace, model: str, version: int, features: pd.DataFrame,
         outputs: ModelOutputs, ids: pa.Array) -> None:
    ws.logbook.append_arrow(model, version, pa.Table.from_pandas(features, preserve_index=False),
                            outputs.to_arrow(), arm="batch", request_ids=ids)


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
