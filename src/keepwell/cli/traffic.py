"""Commands of a model's traffic policy: ``traffic show`` and ``traffic set``.

The policy says how a model's requests are split between its champion and a challenger alias
(see :mod:`keepwell.registry.traffic`); running servers pick a change up without a restart.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import RenderableType

from keepwell.cli._common import JsonFlag, ModelName, Reason, command, settings_of
from keepwell.cli._output import emit, fields
from keepwell.errors import ValidationError
from keepwell.registry.traffic import PolicyKind, TrafficPolicy
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
traffic_app = typer.Typer(help="Split a model's traffic between champion and challenger.",
                          no_args_is_help=True)
commands.add_typer(traffic_app, name="traffic")


def _describe(name: str, policy: TrafficPolicy) -> RenderableType:
    challenger = f"{name}@{policy.challenger_alias}"
    summary = {
        "champion": f"every request goes to {name}@champion",
        "ab": f"{policy.share:.1%} of requests go to {challenger}, sticky by request key",
        "canary": f"{policy.share:.1%} of requests go to {challenger} (canary)",
        "shadow": f"{name}@champion answers; {challenger} also scores every request, "
                  "logged as shadow",
    }[policy.kind]
    return fields({"model": name, "kind": policy.kind, "share": policy.share,
                   "challenger alias": policy.challenger_alias, "routing": summary})


@command(traffic_app, "show")
def traffic_show(ctx: typer.Context, name: ModelName, as_json: JsonFlag = False) -> None:
    """Show a model's traffic policy."""
    with Workspace(settings_of(ctx)) as ws:
        policy = ws.registry.get_traffic(name)
    emit(as_json, {"model": name, **policy.to_dict()}, _describe(name, policy))


@command(traffic_app, "set")
def traffic_set(
    ctx: typer.Context,
    name: ModelName,
    kind: Annotated[PolicyKind, typer.Option(
        help="champion: all to the champion; ab: split, sticky by request key; canary: a "
             "small split; shadow: the challenger scores every request in the background.")],
    share: Annotated[float | None, typer.Option(
        help="The challenger's part of the requests, above 0 and at most 1 (ab and canary "
             "only), e.g. 0.1.")] = None,
    challenger_alias: Annotated[str, typer.Option(
        help="Alias of the challenger version.")] = "challenger",
    reason: Reason = "",
    as_json: JsonFlag = False,
) -> None:
    """Set a model's traffic policy (audited; servers follow without a restart)."""
    if share is None and kind in ("ab", "canary"):
        raise ValidationError(f"{'an A/B' if kind == 'ab' else 'a canary'} policy needs "
                              "--share, the challenger's part of the requests, e.g. --share 0.1.")
    policy = TrafficPolicy(kind, 0.0 if share is None else share, challenger_alias)
    with Workspace(settings_of(ctx)) as ws:
        done = ws.registry.set_traffic(name, policy, reason=reason)
    emit(as_json, {"model": name, **done.to_dict()}, _describe(name, done))
