"""The ``keepwell`` command line: a thin layer over :class:`keepwell.Workspace`.

Every command takes ``--json``, which prints one JSON document to stdout and nothing else;
without it, results are Rich tables. Settings are read once, from ``--config`` (or
``keepwell.yaml`` and the ``KEEPWELL_*`` variables), when a command first needs them.

Every :class:`~keepwell.errors.KeepwellError` is reported in one place
(:func:`keepwell.cli._common.command`): ``error: <message>`` on stderr, or
``{"error": {"code": ..., "message": ...}}`` on stdout with ``--json``. The exit code is 2 for a
user error (an HTTP 4xx status) and 1 otherwise.

One module per concern, each holding a ``commands`` Typer merged into :data:`app` below:

===============  ==============================================================================
``registry``     ``init``, ``db``, ``register``, ``models``, ``versions``, ``alias``,
                 ``rollback``, ``archive``, ``delete``, ``card``
``audit``        ``audit list|verify``
``logbook``      ``log tail|query|stats|seal|retain``, ``feedback``, ``erase``
``serve``        ``serve``: the REST API under uvicorn
``score``        ``score``: batch scoring of a file
``tokens``       ``token create|list|revoke``: API tokens
``traffic``      ``traffic show|set``: champion/challenger splits
``monitor``      ``monitor run|history|alerts|checks``: checks over windows, alerts
===============  ==============================================================================
"""

from __future__ import annotations

import typer

from keepwell.cli import audit, logbook, monitor, registry, score, serve, tokens, traffic
from keepwell.cli._common import root

__all__ = ["app", "main"]

app = typer.Typer(name="keepwell", help="Keep machine-learning models healthy in production.",
                  callback=root, no_args_is_help=True, pretty_exceptions_show_locals=False)
for _module in (registry, logbook, audit, serve, score, tokens, traffic, monitor):
    app.add_typer(_module.commands)


def main() -> None:
    """Entry point of the ``keepwell`` command."""
    app(prog_name="keepwell")
