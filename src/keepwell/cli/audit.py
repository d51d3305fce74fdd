"""Commands of the audit log: ``audit list`` and ``audit verify``."""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.cli._common import JsonFlag, command, settings_of
from keepwell.cli._output import emit, err, out, print_json, simple_table
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
commands.add_typer(audit_app, name="audit")


@command(audit_app, "list")
def audit_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N events.")] = 50,
    target: Annotated[str | None, typer.Option(help="Only events on this target.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The newest audit events, oldest first."""
    with Workspace(settings_of(ctx)) as ws:
        events = ws.audit.events(target=target, action=action, limit=limit, newest_first=True)
    events.reverse()
    emit(as_json, [e.to_dict() for e in events], simple_table(
        ["seq", "at", "actor", "action", "target", "reason"],
        ([e.seq, e.at, e.actor, e.action, e.target, e.reason] for e in events),
        empty="No audit events."))


@command(audit_app, "verify")
def audit_verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the audit log's hash chain; exit code 1 if it is broken."""
    with Workspace(settings_of(ctx)) as ws:
        result = ws.audit.verify()
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        out.print(f"Audit log intact: {result.checked} events checked.")
    else:
        err.print(f"error: audit log broken at event {result.first_broken_seq}: "
                  f"{result.problem} ({result.checked} events verified before it).",
                  soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
