"""``keepwell score``: batch scoring of a Parquet or CSV file, with a progress bar.

The work is :func:`keepwell.serve.scoring.score_file`'s: chunk by chunk, every prediction
logged with the arm ``batch``, the output written whole or not at all.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from keepwell.cli._common import JsonFlag, command, settings_of
from keepwell.cli._output import emit, err
from keepwell.errors import KeepwellError, ValidationError
from keepwell.serve.scoring import score_file
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()

_BLOCK = 1 << 24


def _count_rows(path: Path) -> int | None:
    """How many rows ``path`` holds, cheaply: a Parquet file's metadata, or a CSV file's lines
    less its header (an upper bound when quoted values span lines). None if unknown."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return int(pq.ParquetFile(path).metadata.num_rows)
        if suffix == ".csv":
            newlines, last = 0, b"\n"
            with path.open("rb") as f:
                while block := f.read(_BLOCK):
                    newlines += block.count(b"\n")
                    last = block[-1:]
            return max(newlines + (last != b"\n") - 1, 0)
    except (OSError, ValueError, pa.ArrowException):
        return None  # scoring reports what is wrong with the file
    return None


@command(commands, "score")
def score(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(
        metavar="NAME[@ALIAS|@VERSION]",
        help="Model; its champion unless an alias or version is given.")],
    source: Annotated[Path, typer.Argument(
        metavar="INPUT", exists=True, dir_okay=False, help="Rows to score, Parquet or CSV.")],
    target: Annotated[Path, typer.Argument(
        metavar="OUTPUT", dir_okay=False,
        help="Where to write the input with request_id, prediction and score columns "
             "(.parquet or .csv).")],
    chunk_rows: Annotated[int | None, typer.Option(
        min=1, help="Rows scored at a time (default: about 24 MB of features).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a file with a model version; every prediction is logged with the arm batch."""
    total = _count_rows(source)
    started = time.perf_counter()
    columns = (TextColumn("Scoring {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn())
    with Workspace(settings_of(ctx)) as ws, \
            Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(source.name, total=total)
        try:
            report = score_file(ws, ref, source, target, chunk_rows=chunk_rows,
                                progress=lambda rows: progress.advance(task, rows))
        except KeepwellError:
            raise
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ValidationError(f"cannot score {source.name}: {type(exc).__name__}: {exc}"
                                  ) from None
        progress.update(task, total=report.rows, completed=report.rows)
    seconds = time.perf_counter() - started
    data = {**dataclasses.asdict(report), "input": str(source), "seconds": round(seconds, 3)}
    emit(as_json, data,
         f"Scored {report.rows:,} rows of {source.name} with {report.model}@{report.version} "
         f"in {report.chunks} chunk{'s' if report.chunks != 1 else ''} ({seconds:.1f} s, "
         f"{report.rows / max(seconds, 1e-9):,.0f} rows/s) and wrote {report.output}. The "
         "predictions are in the logbook with the arm 'batch'.")
