"""What every command shares: the ``--config`` state, the error handler and common options.

Every :class:`~keepwell.errors.KeepwellError` a command raises is reported in one place,
:func:`command`: ``error: <message>`` on stderr, or ``{"error": {"code": ..., "message": ...}}``
on stdout with ``--json``. The exit code is 2 for a user error (an HTTP 4xx status) and 1
otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec

import typer

from keepwell.cli._output import err, print_json
from keepwell.config import Settings, load_settings
from keepwell.errors import KeepwellError

__all__ = ["ConfigFile", "JsonFlag", "ModelName", "Reason", "State", "VersionNumber", "Yes",
           "command", "fail", "root", "settings_of"]

P = ParamSpec("P")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
Reason = Annotated[str, typer.Option("--reason", help="Why; recorded in the audit log.")]
ModelName = Annotated[str, typer.Argument(help="Model name.")]
VersionNumber = Annotated[int, typer.Argument(help="Version number.", min=1)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ConfigFile = Annotated[Path | None, typer.Option(
    "--config", dir_okay=False, help="keepwell.yaml to use (default: ./keepwell.yaml).")]


@dataclass
class State:
    """What the root callback passes to every command: the ``--config`` file, if any."""

    config: Path | None

    @functools.cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)


def root(ctx: typer.Context, config: ConfigFile = None) -> None:
    """Keep machine-learning models healthy in production."""
    ctx.obj = State(config)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings, read once, when a command first needs them."""
    state: State = ctx.obj
    return state.settings


def command(group: typer.Typer, name: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Register a command on ``group``, reporting any :class:`KeepwellError` it raises."""

    def register(func: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                func(*args, **kwargs)
            except KeepwellError as exc:
                exit_code = 2 if 400 <= exc.status < 500 else 1
                fail(exc.code, str(exc), exit_code, as_json=bool(kwargs.get("as_json")))

        group.command(name)(run)
        return run

    return register


def fail(code: str, message: str, exit_code: int, *, as_json: bool) -> NoReturn:
    """Report an error (see the module docstring) and exit with ``exit_code``."""
    if as_json:
        print_json({"error": {"code": code, "message": message}})
    else:
        err.print(f"error: {message}", soft_wrap=True)
    raise typer.Exit(exit_code)
