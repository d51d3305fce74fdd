"""``keepwell monitor run|history|alerts|checks``: the monitor from the command line.

``run`` judges the complete windows of the last ``lookback`` (or ``--since``/``--until``)
with a progress bar, stores every result and prints what changed; ``--fail-on-alert`` makes
it exit 3 when a check is alerting, for cron jobs and CI.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keepwell.cli._common import JsonFlag, ModelName, command, settings_of
from keepwell.cli._output import emit, err, simple_table
from keepwell.errors import ValidationError
from keepwell.workspace import Workspace

__all__ = ["commands"]

commands = typer.Typer()
monitor_app = typer.Typer(help="Check models for drift, decay, data problems and unfairness.",
                          no_args_is_help=True)
commands.add_typer(monitor_app, name="monitor")

ALERT_EXIT = 3

Moment = Annotated[str | None, typer.Option(
    help="ISO 8601 date or time, UTC unless it says otherwise (e.g. 2026-01-31).")]


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"--{name} {value!r} is not an ISO 8601 date or time; write "
                              "e.g. 2026-01-31 or 2026-01-31T12:00:00+00:00.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@command(monitor_app, "run")
def monitor_run(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name (default: every model).")
                    ] = None,
    since: Moment = None,
    until: Moment = None,
    notify: Annotated[bool, typer.Option(help="Send alerts to the configured webhooks.")
                      ] = True,
    fail_on_alert: Annotated[bool, typer.Option(
        help=f"Exit {ALERT_EXIT} when any check is alerting after the run.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Judge the recent windows of the logbook with every configured check."""
    columns = (TextColumn("Monitoring {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("windows"), TimeElapsedColumn())
    with Workspace(settings_of(ctx)) as ws, \
            Progress(*columns, console=err, transient=as_json) as progress:
        task = progress.add_task(name or "every model", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        reports = ws.monitor.run(name, since=_moment(since, "since"),
                                 until=_moment(until, "until"), notify=notify,
                                 progress=advance)
        # Alerting now: checks of ready versions this run judged whose state is alert (an
        # archived or deleted version keeps its last state, but does not fail the run).
        alerting = []
        for r in reports:
            ready = {v.version for v in ws.registry.list_versions(r.model)
                     if v.status == "ready"}
            judged = {(x.version, x.check) for x in r.results if x.version in ready}
            alerting += [(r.model, key, state) for key, state in
                         sorted(ws.monitor.store.states(r.model).items())
                         if key in judged and state.status == "alert"]
    rows = [(a.model, a.version, a.check, a.previous_status or "new", a.status, a.message)
            for r in reports for a in r.alerts]
    summary = [f"{r.model}: {r.windows} windows, "
               + ", ".join(f"{n} {s}" for s, n in r.counts().items() if n) for r in reports]
    emit(as_json, {"reports": [r.to_dict() for r in reports],
                   "alerting": [{"model": m, "version": v, "check": c, "message": s.message}
                                for m, (v, c), s in alerting]},
         Group(*summary, simple_table(("model", "version", "check", "was", "now", "why"), rows,
                                      empty="No check changed state.")))
    if fail_on_alert and alerting:
        raise typer.Exit(ALERT_EXIT)


@command(monitor_app, "history")
def monitor_history(
    ctx: typer.Context,
    name: ModelName,
    check: Annotated[str | None, typer.Option(help="Only this check.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this version.", min=1)] = None,
    since: Moment = None,
    as_json: JsonFlag = False,
) -> None:
    """Stored check results, oldest window first."""
    with Workspace(settings_of(ctx)) as ws:
        results = ws.monitor.history(name, check=check, version=version,
                                     since=_moment(since, "since"))
    emit(as_json, [r.to_dict() for r in results],
         simple_table(("window start", "window end", "version", "check", "n", "status",
                       "value", "threshold", "message"),
                      ((r.window.start, r.window.end, r.version, r.check, r.n, r.status,
                        r.outcome.value, r.outcome.threshold, r.outcome.message)
                       for r in results), empty="No results stored yet."))


@command(monitor_app, "alerts")
def monitor_alerts(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name (default: every model).")
                    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """State changes the monitor raised, newest first, with their deliveries."""
    with Workspace(settings_of(ctx)) as ws:
        alerts = ws.monitor.alerts(name, limit=limit)
    emit(as_json, [a.to_dict() for a in alerts],
         simple_table(("raised", "model", "version", "check", "was", "now", "why",
                       "delivered"),
                      ((a.raised_at, a.model, a.version, a.check, a.previous_status or "new",
                        a.status, a.message,
                        ", ".join("ok" if d["ok"] else f"failed: {d['error']}"
                                  for d in a.deliveries) or "log only")
                       for a in alerts), empty="No alerts."))


@command(monitor_app, "checks")
def monitor_checks(ctx: typer.Context, name: ModelName, as_json: JsonFlag = False) -> None:
    """The checks and windows a model gets from the settings."""
    with Workspace(settings_of(ctx)) as ws:
        ws.registry.get_model(name)
        window = ws.monitor.window_spec(name)
        checks = ws.monitor.checks(name)
    described = ([f"every {window.every}"] if window.every is not None
                 else [f"{window.size} predictions"])[0]
    data = {"model": name, "window": window.model_dump(mode="json"),
            "checks": [{**c.spec.model_dump(mode="json"), "name": c.name} for c in checks]}
    emit(as_json, data, Group(
        f"{name}: windows of {described}",
        simple_table(("check", "kind", "settings"),
                     ((c.name, c.kind, {k: v for k, v in c.spec.model_dump().items()
                                        if k not in ("name", "kind")}) for c in checks))))
