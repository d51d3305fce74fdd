"""Commands of the API tokens the server accepts: ``token create|list|revoke``.

A token's secret is printed once, by ``token create``, and stored only as its sha256: it
cannot be shown again. Without ``--json`` the secret alone goes to stdout and the note about it
to stderr, so ``TOKEN=$(keepwell token create ci --role predictor)`` captures just the secret.
"""

from __future__ import annotations

from typing import Annotated

import typer

from keepwell.access import Role
from keepwell.cli._common import JsonFlag, Reason, command, settings_of
from keepwell.cli._output import emit, err, print_json, simple_table
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
token_app = typer.Typer(help="Create, list and revoke API tokens of the server.",
                        no_args_is_help=True)
commands.add_typer(token_app, name="token")

TokenName = Annotated[str, typer.Argument(help="Token name, e.g. the client using it.")]


@command(token_app, "create")
def token_create(
    ctx: typer.Context,
    name: TokenName,
    role: Annotated[Role, typer.Option(
        help="viewer: read; predictor: read, predict and feedback; operator: read, aliases "
             "and traffic; admin: everything.")],
    reason: Reason = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a token; its secret is shown this once."""
    with Workspace(settings_of(ctx)) as ws:
        info, secret = ws.tokens.create(name, role, reason=reason)
    if as_json:
        print_json({"name": info.name, "role": info.role, "token": secret})
        return
    err.print(f"Created token {info.name!r} with the role {info.role}. Copy its secret now: it "
              "is stored only as a hash and cannot be shown again. Send it as "
              "'Authorization: Bearer <token>'.", soft_wrap=True)
    typer.echo(secret)


@command(token_app, "list")
def token_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List tokens (never their secrets)."""
    with Workspace(settings_of(ctx)) as ws:
        tokens = ws.tokens.list()
    emit(as_json, [t.to_dict() for t in tokens], simple_table(
        ["name", "role", "created", "by", "revoked"],
        ([t.name, t.role, t.created_at, t.created_by, t.revoked_at] for t in tokens),
        empty="No tokens yet; create one with `keepwell token create`."))


@command(token_app, "revoke")
def token_revoke(ctx: typer.Context, name: TokenName, reason: Reason = "",
                 as_json: JsonFlag = False) -> None:
    """Revoke a token: servers refuse it within a few seconds."""
    with Workspace(settings_of(ctx)) as ws:
        info = ws.tokens.revoke(name, reason=reason)
    emit(as_json, info.to_dict(),
         f"Revoked token {info.name!r}; running servers refuse it within 5 seconds.")
