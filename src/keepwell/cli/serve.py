"""``keepwell serve``: the REST API (:func:`keepwell.serve.create_app`) under uvicorn.

With one worker the app is built in this process. With more, uvicorn starts worker processes
that each build it with :func:`keepwell.serve.app.app_from_environment`, from the same
settings: the parent passes its configuration file down in ``KEEPWELL_CONFIG`` (the other
``KEEPWELL_*`` variables and the working folder are inherited), and points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh private folder, removed on exit, so that ``/metrics``
sums every worker.

Logs go to stderr; the access log is off unless ``--access-log``. uvloop and httptools are used
when installed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer
import uvicorn
import uvicorn.config

from keepwell.cli._common import ConfigFile, JsonFlag, command, settings_of
from keepwell.cli._output import err, print_json
from keepwell.config import Settings, load_settings
from keepwell.serve.app import create_app
from keepwell.workspace import Workspace

__all__ = ["commands", "run_server"]

commands = typer.Typer()

_FACTORY = "keepwell.serve.app:app_from_environment"
_GRACE_SECONDS = 10  # after SIGTERM, how long open requests may take before they are cut


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the access log on stderr too (stdout stays clean)."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (the worker processes inherit them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_server(settings: Settings, *, host: str, port: int, workers: int,
               access_log: bool = False) -> None:
    """Serve until SIGINT or SIGTERM: open requests finish (for up to 10 s), then it stops."""
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=_log_config(),
                    access_log=access_log, loop="auto", http="auto",
                    timeout_graceful_shutdown=_GRACE_SECONDS)
        return
    Workspace(settings).close()  # a bad database fails here, once, not in every worker
    metrics_dir = tempfile.mkdtemp(prefix="keepwell-metrics-")  # mode 0700
    env = {"PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    if settings.config_file is not None:
        env["KEEPWELL_CONFIG"] = str(settings.config_file)
    try:
        with _environment(env):
            # A worker imports keepwell and loads models before it answers uvicorn's health
            # check: under load that takes longer than uvicorn's 5 s default, and the workers
            # would be killed and respawned forever.
            uvicorn.run(_FACTORY, factory=True, workers=workers, host=host, port=port,
                        log_config=_log_config(), access_log=access_log, loop="auto",
                        http="auto", timeout_graceful_shutdown=_GRACE_SECONDS,
                        timeout_worker_healthcheck=60)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@command(commands, "serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(
        help="Address to listen on [default: serve.host, 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Port to listen on [default: serve.port, 8000].")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes [default: serve.workers, 1].")] = None,
    config: ConfigFile = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log every request (to stderr).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Serve every registered model over REST until stopped (Ctrl-C or SIGTERM)."""
    settings = load_settings(config) if config is not None else settings_of(ctx)
    host = host or settings.serve.host
    port = port or settings.serve.port
    workers = workers or settings.serve.workers
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    data = {"url": url, "host": host, "port": port, "workers": workers,
            "config_file": str(settings.config_file) if settings.config_file else None}
    if as_json:
        print_json(data)
    else:
        err.print(f"Serving keepwell at {url} with {workers} worker"
                  f"{'s' if workers != 1 else ''}; Ctrl-C stops it.", soft_wrap=True)
    run_server(settings, host=host, port=port, workers=workers, access_log=access_log)
