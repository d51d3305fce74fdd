"""Commands of the workspace and the model registry: ``init``, ``db upgrade``, ``register``,
``models``, ``versions``, ``alias``, ``rollback``, ``archive``, ``delete`` and ``card``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import RenderableType

from keepwell.audit import record_event
from keepwell.cli._common import (
    JsonFlag,
    ModelName,
    Reason,
    State,
    VersionNumber,
    Yes,
    command,
    fail,
    settings_of,
)
from keepwell.cli._data import column, read_frame
from keepwell.cli._output import cell, emit, err, fields, print_json, simple_table
from keepwell.config import CONFIG_FILENAME, config_template, load_settings
from keepwell.registry import ANY, AliasMove, ModelInfo
from keepwell.store.db import Database
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
db_app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)
models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)
versions_app = typer.Typer(help="List the versions of a model.", no_args_is_help=True)
alias_app = typer.Typer(help="Move aliases such as champion, with history.", no_args_is_help=True)
commands.add_typer(db_app, name="db")
commands.add_typer(models_app, name="models")
commands.add_typer(versions_app, name="versions")
commands.add_typer(alias_app, name="alias")


def _split_target(frame: pd.DataFrame, target: str, path: Path) -> tuple[pd.DataFrame, pd.Series]:
    y = column(frame, target, path, "pass the label column with --target")
    return frame.drop(columns=[target]), y


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


def _move_text(move: AliasMove) -> str:
    if not move.changed:
        return f"{move.model}@{move.alias} already points to {cell(move.to_version)}."
    return (f"{move.model}@{move.alias}: {cell(move.from_version)} -> "
            f"{cell(move.to_version)} (audit event {move.audit_seq}).")


def _model_fields(model: ModelInfo) -> RenderableType:
    return fields({
        "name": model.name, "task": model.task, "description": model.description or None,
        "target": model.target, "sensitive features": model.sensitive_features,
        "latest version": model.latest_version, "aliases": dict(model.aliases),
        "unsafe formats allowed": model.allow_unsafe_formats,
        "created": model.created_at, "created by": model.created_by,
    })


@command(commands, "init")
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite keepwell.yaml.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a commented keepwell.yaml here and create the workspace."""
    state: State = ctx.obj
    path = (state.config or Path(CONFIG_FILENAME)).absolute()
    if path.exists() and not force:
        fail("already-exists", f"{path.name} already exists; pass --force to overwrite it.",
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
    emit(as_json, data, f"Wrote {path.name} and initialised the workspace in "
                        f"{settings.workspace} ({dialect}).")


@command(db_app, "upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply pending schema migrations (back up the database first)."""
    db = Database(settings_of(ctx).database_url)
    try:
        previous = db.schema_status().current
        status = db.upgrade()
    finally:
        db.dispose()
    data = {"previous": previous, "current": status.current, "head": status.head}
    emit(as_json, data, f"Database schema at {status.current} (head {status.head}; "
                        f"was {previous or 'empty'}).")


@command(commands, "register")
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
    frame = read_frame(data)
    keys = None
    if subjects is not None:
        keys = column(frame, subjects, data, "pass the subject column with --subjects")
        frame = frame.drop(columns=[subjects])
    X, y = _split_target(frame, target, data)
    holdout_xy = None
    if holdout is not None:
        holdout_frame = read_frame(holdout).drop(columns=[subjects] if subjects else [],
                                                 errors="ignore")
        holdout_xy = _split_target(holdout_frame, target, holdout)
    with Workspace(settings_of(ctx)) as ws, err.status(f"Registering {name}…"):
        version = ws.registry.register(
            name, model, X, y, holdout=holdout_xy, reason=reason, alias=alias, parent=parent,
            description=description, sensitive_features=sensitive or (), subjects=keys,
            trust_pickle=trust_pickle or False)
    emit(as_json, version.to_dict(),
         f"Registered {version.ref} ({version.flavor}, sha256 {version.artifact_sha256[:12]})"
         + (f", metrics: {cell(dict(version.metrics))}" if version.metrics else "") + ".")


@command(models_app, "list")
def models_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List registered models."""
    with Workspace(settings_of(ctx)) as ws:
        models = ws.registry.list_models()
    emit(as_json, [m.to_dict() for m in models], simple_table(
        ["name", "task", "latest", "aliases", "created", "by"],
        ([m.name, m.task, m.latest_version, dict(m.aliases), m.created_at, m.created_by]
         for m in models),
        empty="No models registered yet; add one with `keepwell register`."))


@command(models_app, "show")
def models_show(ctx: typer.Context, name: ModelName, as_json: JsonFlag = False) -> None:
    """Show one model's settings and aliases."""
    with Workspace(settings_of(ctx)) as ws:
        model = ws.registry.get_model(name)
    emit(as_json, model.to_dict(), _model_fields(model))


@command(versions_app, "list")
def versions_list(
    ctx: typer.Context,
    name: ModelName,
    all_: Annotated[bool, typer.Option("--all", help="Include deleted versions.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the versions of a model."""
    with Workspace(settings_of(ctx)) as ws:
        versions = ws.registry.list_versions(name, include_deleted=all_)
    emit(as_json, [v.to_dict() for v in versions], simple_table(
        ["version", "status", "aliases", "metrics", "created", "reason"],
        ([v.version, v.status, v.aliases, dict(v.metrics), v.created_at, v.reason]
         for v in versions),
        empty="No versions."))


@command(alias_app, "set")
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
    with Workspace(settings_of(ctx)) as ws:
        move = ws.registry.set_alias(name, alias, version, expected_version=expected,
                                     reason=reason)
    emit(as_json, move.to_dict(), _move_text(move))


@command(alias_app, "history")
def alias_history(
    ctx: typer.Context,
    name: ModelName,
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every move of a model's aliases, oldest first."""
    with Workspace(settings_of(ctx)) as ws:
        moves = ws.registry.alias_history(name, alias)
    emit(as_json, [m.to_dict() for m in moves], simple_table(
        ["at", "alias", "action", "from", "to", "actor", "reason", "audit"],
        ([m.at, m.alias, m.action, m.from_version, m.to_version, m.actor, m.reason,
          m.audit_seq] for m in moves),
        empty="No alias moves."))


@command(commands, "rollback")
def rollback(
    ctx: typer.Context,
    name: ModelName,
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "champion",
    reason: Reason = "",
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to the version it pointed to before."""
    with Workspace(settings_of(ctx)) as ws:
        move = ws.registry.rollback(name, alias=alias, reason=reason)
    emit(as_json, move.to_dict(), _move_text(move))


@command(commands, "archive")
def archive(ctx: typer.Context, name: ModelName, version: VersionNumber, reason: Reason = "",
            as_json: JsonFlag = False) -> None:
    """Retire a version: kept for audit, never served."""
    with Workspace(settings_of(ctx)) as ws:
        archived = ws.registry.archive_version(name, version, reason=reason)
    emit(as_json, archived.to_dict(), f"Archived {archived.ref}.")


@command(commands, "delete")
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
    with Workspace(settings_of(ctx)) as ws:
        deleted = ws.registry.delete_version(name, version, reason=reason)
    emit(as_json, deleted.to_dict(), f"Deleted {deleted.ref}.")


@command(commands, "card")
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
    with Workspace(settings_of(ctx)) as ws:
        text = ws.registry.card(ref, format=fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        emit(as_json, {"ref": ref, "format": fmt, "output": str(output)},
             f"Wrote the model card of {ref} to {output}.")
    elif as_json:
        print_json({"ref": ref, "format": fmt, "content": text})
    else:
        typer.echo(text)
