"""Running the ``keepwell`` command line in-process, for the CLI tests."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from keepwell.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0, input: str | None = None) -> Result:
    """Invoke ``keepwell ARGS``; the exit code must be ``code`` and no traceback shown."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def run_json(*args: str, code: int = 0) -> Any:
    """Invoke ``keepwell ARGS --json`` and parse what it printed."""
    return json.loads(run(*args, "--json", code=code).stdout)
