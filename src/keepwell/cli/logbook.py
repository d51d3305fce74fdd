"""Commands of the logbook: ``log tail|query|stats|seal|retain``, ``feedback`` and ``erase``."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pandas as pd
import typer

from keepwell.cli._common import JsonFlag, ModelName, Reason, Yes, command, settings_of
from keepwell.cli._data import column, read_frame
from keepwell.cli._output import arrow_rows, cell, emit, err, plain, records, simple_table
from keepwell.errors import ValidationError
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
log_app = typer.Typer(help="Read and maintain the logbook of predictions and labels.",
                      no_args_is_help=True)
commands.add_typer(log_app, name="log")


def _keys(series: pd.Series, path: Path) -> list[str]:
    """Request ids or subject keys as text; a missing one is an error (it could never match)."""
    missing = int(series.isna().sum())
    if missing:
        raise ValidationError(f"{path.name}: {missing} rows have no {series.name!r}; every label "
                              "needs one to find its prediction.")
    return [str(v) for v in series]


def _feedback_keys(frame: pd.DataFrame, path: Path, id_column: str | None,
                   subject_column: str | None, time_column: str | None
                   ) -> tuple[str, dict[str, Any]]:
    """How the labels of ``frame`` find their predictions: by request id, or by subject and
    time. Without options, by ``request_id`` if the file has it, else ``subject``+``event_ts``."""
    by_subject = subject_column is not None or time_column is not None
    if by_subject and id_column is not None:
        raise ValidationError("give --id-column, or --subject-column and --time-column, not "
                              "both: the labels of one file match their predictions one way.")
    if not by_subject and id_column is None:
        by_subject = ("request_id" not in frame.columns
                      and {"subject", "event_ts"} <= set(frame.columns))
    if by_subject:
        hint = "name the {} column with {}, or match by request id with --id-column"
        subjects = column(frame, subject_column or "subject", path,
                          hint.format("subject", "--subject-column"))
        times = column(frame, time_column or "event_ts", path,
                       hint.format("time", "--time-column"))
        if times.isna().any():
            raise ValidationError(f"{path.name}: some rows have no {times.name!r}; every label "
                                  "by subject needs the time it is about.")
        return "subject and time", {"subjects": _keys(subjects, path), "event_ts": times}
    ids = column(frame, id_column or "request_id", path,
                 "name the request-id column with --id-column, or match by subject and time "
                 "with --subject-column and --time-column")
    return "request id", {"request_ids": _keys(ids, path)}


@command(log_app, "tail")
def log_tail(
    ctx: typer.Context,
    name: ModelName,
    n: Annotated[int, typer.Option("-n", min=0, help="How many predictions.")] = 20,
    version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    arm: Annotated[str | None, typer.Option(help="Only this arm, e.g. challenger.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The last N predictions of a model with their labels, oldest first."""
    with Workspace(settings_of(ctx)) as ws:
        table = ws.logbook.predictions(name, last=n, version=version, arm=arm,
                                       with_labels=True)
    columns = ["request_id", "ts", "version", "arm", "prediction",
               *(["score"] if "score" in table.column_names else []),
               "label", "latency_ms", "subject"]
    emit(as_json, records(table), arrow_rows(
        table, columns, limit=max(n, 1), empty=f"No predictions of {name} logged."))


@command(log_app, "query")
def log_query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="SQL over the predictions, feedback and labels "
                                            "views.")],
    model: Annotated[str | None, typer.Option(help="Read only this model's files.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run SQL over the logbook (DuckDB); shows the first 50 rows unless --json or --csv."""
    if csv and as_json:
        raise ValidationError("choose one of --json and --csv.")
    with Workspace(settings_of(ctx)) as ws:
        try:
            table = ws.logbook.query(sql, model=model)
        except duckdb.Error as exc:
            raise ValidationError(f"the query failed: {exc}") from None
    if csv:
        frame = pd.DataFrame(records(table), columns=table.column_names)
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        emit(as_json, records(table), arrow_rows(table))


@command(log_app, "stats")
def log_stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Rows logged per kind and model, with the first and last times."""
    with Workspace(settings_of(ctx)) as ws:
        rows = ws.logbook.stats()["models"]
    emit(as_json, plain(rows), simple_table(
        ["kind", "model", "rows", "first", "last"],
        ([r["kind"], r["model"], r["rows"], r["first"], r["last"]] for r in rows),
        empty="The logbook is empty."))


@command(log_app, "seal")
def log_seal(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn closed segments into Parquet files (by model and day)."""
    with Workspace(settings_of(ctx)) as ws:
        report = ws.logbook.seal()
    emit(as_json, dataclasses.asdict(report),
         f"Sealed {report.segments} segments: {report.rows:,} rows into {report.files} "
         "Parquet files" + (f" ({report.torn_tails} unacknowledged torn tails dropped)"
                            if report.torn_tails else "") + ".")


@command(log_app, "retain")
def log_retain(
    ctx: typer.Context,
    days: Annotated[int | None, typer.Option(
        min=1, help="Keep this many days (default: logbook.retention_days).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete sealed days of predictions and feedback older than the retention period."""
    settings = settings_of(ctx)
    days = days or settings.logbook.retention_days
    if days is None:
        raise ValidationError("no retention period: pass --days N, or set retention_days under "
                              "logbook: in keepwell.yaml.")
    with Workspace(settings) as ws:
        report = ws.logbook.apply_retention(timedelta(days=days))
    emit(as_json, {"days": days, "files_removed": report.files_removed,
                   "cutoff": plain(report.cutoff)},
         f"Removed {report.files_removed} files of days before {cell(report.cutoff)} UTC "
         f"({days} days kept).")


@command(commands, "feedback")
def feedback(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="Labels, Parquet or CSV.")],
    model: Annotated[str, typer.Option(help="Model the labels are for.")],
    label_column: Annotated[str, typer.Option(help="Column of the labels.")] = "label",
    id_column: Annotated[str | None, typer.Option(
        help="Column of request ids [default: request_id].")] = None,
    subject_column: Annotated[str | None, typer.Option(
        help="Match by subject: its column [default: subject].")] = None,
    time_column: Annotated[str | None, typer.Option(
        help="Match by subject: the column of the time each label is about "
             "[default: event_ts].")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Log late labels from a file, by request id or by subject and time."""
    with err.status(f"Reading {file.name}…"):
        frame = read_frame(file)
    labels = column(frame, label_column, file, "name it with --label-column")
    mode, keys = _feedback_keys(frame, file, id_column, subject_column, time_column)
    with Workspace(settings_of(ctx)) as ws, err.status(f"Logging {len(frame):,} labels…"):
        result = ws.logbook.add_feedback(model, labels, **keys)
    emit(as_json, {"model": model, "file": str(file), "by": mode,
                   **dataclasses.asdict(result)},
         f"Logged {result.accepted:,} labels for {model} by {mode}"
         + (f"; {result.unmatched:,} match no logged prediction yet. They are kept, and join "
            "predictions logged later." if result.unmatched else "; all matched."))


@command(commands, "erase")
def erase(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option(help="Key of the person or entity to erase.")],
    reason: Reason = "",
    yes: Yes = False,
    as_json: JsonFlag = False,
) -> None:
    """Erase every prediction and label about a subject (right to erasure)."""
    if not yes:
        typer.confirm("Erase every prediction and label about this subject? This cannot be "
                      "undone.", abort=True, err=True)
    with Workspace(settings_of(ctx)) as ws, err.status("Erasing…"):
        erasure = ws.erase(subject, reason=reason)
    report = erasure.logbook
    trained = erasure.trained_versions
    emit(as_json, erasure.to_dict(), "\n".join([
        f"Removed {report.predictions:,} predictions and {report.feedback:,} labels "
        f"({report.files_rewritten} files rewritten).",
        f"The audit log records the subject only as its hash, sha256 "
        f"{report.subject_sha256[:16]}….",
        f"Trained on data holding the subject: {', '.join(trained)}; consider retraining "
        "without it." if trained else "No registered version was trained on data holding "
        "the subject (as far as registered subject keys show)."]))

