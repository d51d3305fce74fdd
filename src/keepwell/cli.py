"""The ``keepwell`` command line: a thin layer over :class:`keepwell.Workspace`.

Every command takes ``--json``, which prints one JSON document to stdout and nothing else;
without it, results are Rich tables. Settings are read once, from ``--config`` (or
``keepwell.yaml`` and the ``KEEPWELL_*`` variables), when a command first needs them.

Every :class:`~keepwell.errors.KeepwellError` is reported in one place (:func:`_command`):
``error: <message>`` on stderr, or ``{"error": {"code": ..., "message": ...}}`` on stdout with
``--json``. The exit code is 2 for a user error (an HTTP 4xx status) and 1 otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec

import duckdb
import pandas as pd
import pyarrow as pa
import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from keepwell.audit import record_event
from keepwell.config import CONFIG_FILENAME, Settings, config_template, load_settings
from keepwell.errors import KeepwellError, ValidationError
from keepwell.registry import ANY, AliasMove, ModelInfo
from keepwell.store.db import Database
from keepwell.workspace import Workspace

__all__ = ["app", "main"]

P = ParamSpec("P")

# Markup and emoji codes off: names, reasons and messages are printed exactly as they are.
_stdout = Console(markup=False, emoji=False, highlight=False)
_stderr = Console(stderr=True, markup=False, emoji=False, highlight=False)

app = typer.Typer(name="keepwell", help="Keep machine-learning models healthy in production.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
db_app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)
models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)
versions_app = typer.Typer(help="List the versions of a model.", no_args_is_help=True)
alias_app = typer.Typer(help="Move aliases such as champion, with history.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
log_app = typer.Typer(help="Read and maintain the logbook of predictions and labels.",
                      no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(versions_app, name="versions")
app.add_typer(alias_app, name="alias")
app.add_typer(audit_app, name="audit")
app.add_typer(log_app, name="log")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
Reason = Annotated[str, typer.Option("--reason", help="Why; recorded in the audit log.")]
ModelName = Annotated[str, typer.Argument(help="Model name.")]
VersionNumber = Annotated[int, typer.Argument(help="Version number.", min=1)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


# -- settings and workspace -------------------------------------------------------------------


@dataclass
class _State:
    """What the root callback passes to every command: the ``--config`` file, if any."""

    config: Path | None

    @functools.cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", dir_okay=False, help="keepwell.yaml to use (default: ./keepwell.yaml).",
    )] = None,
) -> None:
    ctx.obj = _State(config)


def _settings(ctx: typer.Context) -> Settings:
    state: _State = ctx.obj
    return state.settings


# -- errors and output ------------------------------------------------------------------------


def _command(group: typer.Typer, name: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Register a command on ``group``, reporting any :class:`KeepwellError` it raises."""

    def register(func: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                func(*args, **kwargs)
            except KeepwellError as exc:
                exit_code = 2 if 400 <= exc.status < 500 else 1
                _fail(exc.code, str(exc), exit_code, as_json=bool(kwargs.get("as_json")))

        group.command(name)(run)
        return run

    return register


def _fail(code: str, message: str, exit_code: int, *, as_json: bool) -> NoReturn:
    if as_json:
        _print_json({"error": {"code": code, "message": message}})
    else:
        _stderr.print(f"error: {message}", soft_wrap=True)
    raise typer.Exit(exit_code)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _emit(as_json: bool, data: Any, human: RenderableType) -> None:
    """Print ``data`` as JSON, or ``human`` for a person."""
    if as_json:
        _print_json(data)
    else:
        _stdout.print(human, soft_wrap=isinstance(human, str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Mapping):
        return "\n".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
           empty: str = "Nothing to show.") -> RenderableType:
    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap long values, never cut them
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table if table.row_count else Text(empty)


def _plain(value: Any) -> Any:
    """A value as JSON can hold it: times in ISO 8601 (UTC), ids as text, NaN as null."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date | uuid.UUID):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _records(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def _rows_table(table: pa.Table, columns: Sequence[str] | None = None, *, limit: int = 50,
                empty: str = "No rows.") -> RenderableType:
    """The first ``limit`` rows of an Arrow table, saying how many more there are."""
    columns = list(columns or table.column_names)
    shown = table.slice(0, limit)
    values = [shown.column(i).to_pylist() for i in
              (table.column_names.index(c) for c in columns)]
    rendered = _table(columns, zip(*values, strict=True), empty=empty)
    more = table.num_rows - shown.num_rows
    if more <= 0:
        return rendered
    return Group(rendered, Text(f"… and {more:,} more rows; use --json or --csv for all."))


def _fields(values: Mapping[str, Any]) -> RenderableType:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in values.items():
        table.add_row(key, _cell(value))
    return table


def _move_text(move: AliasMove) -> str:
    if not move.changed:
        return f"{move.model}@{move.alias} already points to {_cell(move.to_version)}."
    return (f"{move.model}@{move.alias}: {_cell(move.from_version)} -> "
            f"{_cell(move.to_version)} (audit event {move.audit_seq}).")


def _model_fields(model: ModelInfo) -> RenderableType:
    return _fields({
        "name": model.name, "task": model.task, "description": model.description or None,
        "target": model.target, "sensitive features": model.sensitive_features,
        "latest version": model.latest_version, "aliases": dict(model.aliases),
        "unsafe formats allowed": model.allow_unsafe_formats,
        "created": model.created_at, "created by": model.created_by,
    })


# -- data files -------------------------------------------------------------------------------


def _read_frame(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file as a data frame, chosen by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise ValidationError(f"cannot read {path.name}: data files must be Parquet "
                              "(.parquet, .pq) or CSV (.csv).")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {path.name} ({type(exc).__name__}); check that "
                              f"it is a valid {suffix[1:]} file.") from None


def _column(frame: pd.DataFrame, name: str, path: Path, hint: str) -> pd.Series:
    """Column ``name`` of a data file, or an error that names it and says ``hint``."""
    if name not in frame.columns:
        raise ValidationError(f"{path.name} has no column {name!r}; {hint}.")
    return frame[name]


def _split_target(frame: pd.DataFrame, target: str, path: Path) -> tuple[pd.DataFrame, pd.Series]:
    y = _column(frame, target, path, "pass the label column with --target")
    return frame.drop(columns=[target]), y


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
        subjects = _column(frame, subject_column or "subject", path,
                           hint.format("subject", "--subject-column"))
        times = _column(frame, time_column or "event_ts", path,
                        hint.format("time", "--time-column"))
        if times.isna().any():
            raise ValidationError(f"{path.name}: some rows have no {times.name!r}; every label "
                                  "by subject needs the time it is about.")
        return "subject and time", {"subjects": _keys(subjects, path), "event_ts": times}
    ids = _column(frame, id_column or "request_id", path,
                  "name the request-id column with --id-column, or match by subject and time "
                  "with --subject-column and --time-column")
    return "request id", {"request_ids": _keys(ids, path)}


def _expected_version(value: str | None) -> Any:
    if value is None:
        return ANY
    if value.lower() == "none":
        return None
    if value.isdigit() and value.isascii():
        return int(value)
    raise typer.BadParameter("use a version number, or 'none' for an alias that is not set.",
                             param_hint="--expect")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


# -- commands ---------------------------------------------------------------------------------


@_command(app, "init")
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite keepwell.yaml.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a commented keepwell.yaml here and create the workspace."""
    state: _State = ctx.obj
    path = (state.config or Path(CONFIG_FILENAME)).absolute()
    if path.exists() and not force:
        _fail("already-exists", f"{path.name} already exists; pass --force to overwrite it.",
              1, as_json=as_json)
    _write_private(path, config_template())
    settings = load_settings(path)
    for folder in (settings.workspace, settings.artifact_root):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with Workspace(settings) as ws, ws.db.write() as conn:
        dialect = ws.db.dialect
        event = record_event(conn, actor=ws.actor, action="workspace.init", target="workspace",
                             before=None, after={"config_file": path.name, "database": dialect},
                             reason="keepwell init")
    data = {"config_file": str(path), "workspace": str(settings.workspace), "database": dialect,
            "audit_seq": event.seq}
    _emit(as_json, data, f"Wrote {path.name} and initialised the workspace in "
                         f"{settings.workspace} ({dialect}).")


@_command(db_app, "upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply pending schema migrations (back up the database first)."""
    db = Database(_settings(ctx).database_url)
    try:
        previous = db.schema_status().current
        status = db.upgrade()
    finally:
        db.dispose()
    data = {"previous": previous, "current": status.current, "head": status.head}
    _emit(as_json, data, f"Database schema at {status.current} (head {status.head}; "
                         f"was {previous or 'empty'}).")


@_command(app, "register")
def register(
    ctx: typer.Context,
    name: ModelName,
    model: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                        help="Model file: skops, or pickle/joblib.")],
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                       help="Training data, Parquet or CSV.")],
    target: Annotated[str, typer.Option(help="Label column of the data.")],
    holdout: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Held-out data for metrics, Parquet or CSV.")] = None,
    reason: Reason = "",
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")]
        = None,
    parent: Annotated[int | None, typer.Option(help="Version this one derives from.")] = None,
    description: Annotated[str | None, typer.Option(help="Model description.")] = None,
    sensitive: Annotated[list[str] | None, typer.Option(
        help="Sensitive feature column (repeatable).")] = None,
    trust_pickle: Annotated[str | None, typer.Option(
        metavar="SHA256", help="Load a pickle/joblib file whose sha256 is this.")] = None,
    subjects: Annotated[str | None, typer.Option(
        "--subjects", metavar="COLUMN",
        help="Column of each row's subject key: not a feature; kept as hashes so that "
             "`keepwell erase` names the versions trained on a subject.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a trained model file as a new version of NAME."""
    frame = _read_frame(data)
    keys = None
    if subjects is not None:
        keys = _column(frame, subjects, data, "pass the subject column with --subjects")
        frame = frame.drop(columns=[subjects])
    X, y = _split_target(frame, target, data)
    holdout_xy = None
    if holdout is not None:
        holdout_frame = _read_frame(holdout).drop(columns=[subjects] if subjects else [],
                                                  errors="ignore")
        holdout_xy = _split_target(holdout_frame, target, holdout)
    with Workspace(_settings(ctx)) as ws, _stderr.status(f"Registering {name}…"):
        version = ws.registry.register(
            name, model, X, y, holdout=holdout_xy, reason=reason, alias=alias, parent=parent,
            description=description, sensitive_features=sensitive or (), subjects=keys,
            trust_pickle=trust_pickle or False)
    _emit(as_json, version.to_dict(),
          f"Registered {version.ref} ({version.flavor}, sha256 {version.artifact_sha256[:12]})"
          + (f", metrics: {_cell(dict(version.metrics))}" if version.metrics else "") + ".")


@_command(models_app, "list")
def models_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List registered models."""
    with Workspace(_settings(ctx)) as ws:
        models = ws.registry.list_models()
    _emit(as_json, [m.to_dict() for m in models], _table(
        ["name", "task", "latest", "aliases", "created", "by"],
        ([m.name, m.task, m.latest_version, dict(m.aliases), m.created_at, m.created_by]
         for m in models),
        empty="No models registered yet; add one with `keepwell register`."))


@_command(models_app, "show")
def models_show(ctx: typer.Context, name: ModelName, as_json: JsonFlag = False) -> None:
    """Show one model's settings and aliases."""
    with Workspace(_settings(ctx)) as ws:
        model = ws.registry.get_model(name)
    _emit(as_json, model.to_dict(), _model_fields(model))


@_command(versions_app, "list")
def versions_list(
    ctx: typer.Context,
    name: ModelName,
    all_: Annotated[bool, typer.Option("--all", help="Include deleted versions.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the versions of a model."""
    with Workspace(_settings(ctx)) as ws:
        versions = ws.registry.list_versions(name, include_deleted=all_)
    _emit(as_json, [v.to_dict() for v in versions], _table(
        ["version", "status", "aliases", "metrics", "created", "reason"],
        ([v.version, v.status, v.aliases, dict(v.metrics), v.created_at, v.reason]
         for v in versions),
        empty="No versions."))


@_command(alias_app, "set")
def alias_set(
    ctx: typer.Context,
    name: ModelName,
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    version: VersionNumber,
    expect: Annotated[str | None, typer.Option(
        metavar="VERSION|none",
        help="Move only if the alias points here now ('none': only if it is unset).")] = None,
    reason: Reason = "",
    as_json: JsonFlag = False,
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    expected = _expected_version(expect)
    with Workspace(_settings(ctx)) as ws:
        move = ws.registry.set_alias(name, alias, version, expected_version=expected,
                                     reason=reason)
    _emit(as_json, move.to_dict(), _move_text(move))


@_command(alias_app, "history")
def alias_history(
    ctx: typer.Context,
    name: ModelName,
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every move of a model's aliases, oldest first."""
    with Workspace(_settings(ctx)) as ws:
        moves = ws.registry.alias_history(name, alias)
    _emit(as_json, [m.to_dict() for m in moves], _table(
        ["at", "alias", "action", "from", "to", "actor", "reason", "audit"],
        ([m.at, m.alias, m.action, m.from_version, m.to_version, m.actor, m.reason,
          m.audit_seq] for m in moves),
        empty="No alias moves."))


@_command(app, "rollback")
def rollback(
    ctx: typer.Context,
    name: ModelName,
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    reason: Reason = "",
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to the version it pointed to before."""
    with Workspace(_settings(ctx)) as ws:
        move = ws.registry.rollback(name, alias=alias, reason=reason)
    _emit(as_json, move.to_dict(), _move_text(move))


@_command(app, "archive")
def archive(ctx: typer.Context, name: ModelName, version: VersionNumber, reason: Reason = "",
            as_json: JsonFlag = False) -> None:
    """Retire a version: kept for audit, never served."""
    with Workspace(_settings(ctx)) as ws:
        archived = ws.registry.archive_version(name, version, reason=reason)
    _emit(as_json, archived.to_dict(), f"Archived {archived.ref}.")


@_command(app, "delete")
def delete(
    ctx: typer.Context,
    name: ModelName,
    version: VersionNumber,
    reason: Reason = "",
    yes: Yes = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a version's model file; its record stays for lineage."""
    if not yes:
        typer.confirm(f"Delete {name}@{version}? Its model file will be removed.", abort=True,
                      err=True)
    with Workspace(_settings(ctx)) as ws:
        deleted = ws.registry.delete_version(name, version, reason=reason)
    _emit(as_json, deleted.to_dict(), f"Deleted {deleted.ref}.")


@_command(app, "card")
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name@alias or name@version.")],
    html: Annotated[bool, typer.Option("--html", help="HTML instead of Markdown.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False, help="Write the card to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Render the model card of a version."""
    fmt = "html" if html else "markdown"
    with Workspace(_settings(ctx)) as ws:
        text = ws.registry.card(ref, format=fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        _emit(as_json, {"ref": ref, "format": fmt, "output": str(output)},
              f"Wrote the model card of {ref} to {output}.")
    elif as_json:
        _print_json({"ref": ref, "format": fmt, "content": text})
    else:
        typer.echo(text)


@_command(audit_app, "list")
def audit_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N events.")] = 50,
    target: Annotated[str | None, typer.Option(help="Only events on this target.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The newest audit events, oldest first."""
    with Workspace(_settings(ctx)) as ws:
        events = ws.audit.events(target=target, action=action, limit=limit, newest_first=True)
    events.reverse()
    _emit(as_json, [e.to_dict() for e in events], _table(
        ["seq", "at", "actor", "action", "target", "reason"],
        ([e.seq, e.at, e.actor, e.action, e.target, e.reason] for e in events),
        empty="No audit events."))


@_command(audit_app, "verify")
def audit_verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the audit log's hash chain; exit code 1 if it is broken."""
    with Workspace(_settings(ctx)) as ws:
        result = ws.audit.verify()
    if as_json:
        _print_json(result.to_dict())
    elif result.ok:
        _stdout.print(f"Audit log intact: {result.checked} events checked.")
    else:
        _stderr.print(f"error: audit log broken at event {result.first_broken_seq}: "
                      f"{result.problem} ({result.checked} events verified before it).",
                      soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


# -- logbook ----------------------------------------------------------------------------------


@_command(log_app, "tail")
def log_tail(
    ctx: typer.Context,
    name: ModelName,
    n: Annotated[int, typer.Option("-n", min=0, help="How many predictions.")] = 20,
    version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    arm: Annotated[str | None, typer.Option(help="Only this arm, e.g. challenger.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The last N predictions of a model with their labels, oldest first."""
    with Workspace(_settings(ctx)) as ws:
        table = ws.logbook.predictions(name, last=n, version=version, arm=arm,
                                       with_labels=True)
    columns = ["request_id", "ts", "version", "arm", "prediction",
               *(["score"] if "score" in table.column_names else []),
               "label", "latency_ms", "subject"]
    _emit(as_json, _records(table), _rows_table(
        table, columns, limit=max(n, 1), empty=f"No predictions of {name} logged."))


@_command(log_app, "query")
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
    with Workspace(_settings(ctx)) as ws:
        try:
            table = ws.logbook.query(sql, model=model)
        except duckdb.Error as exc:
            raise ValidationError(f"the query failed: {exc}") from None
    if csv:
        frame = pd.DataFrame(_records(table), columns=table.column_names)
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        _emit(as_json, _records(table), _rows_table(table))


@_command(log_app, "stats")
def log_stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Rows logged per kind and model, with the first and last times."""
    with Workspace(_settings(ctx)) as ws:
        rows = ws.logbook.stats()["models"]
    _emit(as_json, _plain(rows), _table(
        ["kind", "model", "rows", "first", "last"],
        ([r["kind"], r["model"], r["rows"], r["first"], r["last"]] for r in rows),
        empty="The logbook is empty."))


@_command(log_app, "seal")
def log_seal(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn closed segments into Parquet files (by model and day)."""
    with Workspace(_settings(ctx)) as ws:
        report = ws.logbook.seal()
    _emit(as_json, dataclasses.asdict(report),
          f"Sealed {report.segments} segments: {report.rows:,} rows into {report.files} "
          "Parquet files" + (f" ({report.torn_tails} unacknowledged torn tails dropped)"
                             if report.torn_tails else "") + ".")


@_command(log_app, "retain")
def log_retain(
    ctx: typer.Context,
    days: Annotated[int | None, typer.Option(
        min=1, help="Keep this many days (default: logbook.retention_days).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete sealed days of predictions and feedback older than the retention period."""
    settings = _settings(ctx)
    days = days or settings.logbook.retention_days
    if days is None:
        raise ValidationError("no retention period: pass --days N, or set retention_days under "
                              "logbook: in keepwell.yaml.")
    with Workspace(settings) as ws:
        report = ws.logbook.apply_retention(timedelta(days=days))
    _emit(as_json, {"days": days, "files_removed": report.files_removed,
                    "cutoff": _plain(report.cutoff)},
          f"Removed {report.files_removed} files of days before {_cell(report.cutoff)} UTC "
          f"({days} days kept).")


@_command(app, "feedback")
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
    with _stderr.status(f"Reading {file.name}…"):
        frame = _read_frame(file)
    labels = _column(frame, label_column, file, "name it with --label-column")
    mode, keys = _feedback_keys(frame, file, id_column, subject_column, time_column)
    with Workspace(_settings(ctx)) as ws, _stderr.status(f"Logging {len(frame):,} labels…"):
        result = ws.logbook.add_feedback(model, labels, **keys)
    _emit(as_json, {"model": model, "file": str(file), "by": mode,
                    **dataclasses.asdict(result)},
          f"Logged {result.accepted:,} labels for {model} by {mode}"
          + (f"; {result.unmatched:,} match no logged prediction yet. They are kept, and join "
             "predictions logged later." if result.unmatched else "; all matched."))


@_command(app, "erase")
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
    with Workspace(_settings(ctx)) as ws, _stderr.status("Erasing…"):
        erasure = ws.erase(subject, reason=reason)
    report = erasure.logbook
    trained = erasure.trained_versions
    _emit(as_json, erasure.to_dict(), "\n".join([
        f"Removed {report.predictions:,} predictions and {report.feedback:,} labels "
        f"({report.files_rewritten} files rewritten).",
        f"The audit log records the subject only as its hash, sha256 "
        f"{report.subject_sha256[:16]}….",
        f"Trained on data holding the subject: {', '.join(trained)}; consider retraining "
        "without it." if trained else "No registered version was trained on data holding "
        "the subject (as far as registered subject keys show)."]))


def main() -> None:
    """Entry point of the ``keepwell`` command."""
    app(prog_name="keepwell")


if __name__ == "__main__":
    main()
