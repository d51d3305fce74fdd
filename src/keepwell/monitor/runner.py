"""The monitor: cut the logbook (or any frame) into windows, run every check, keep the
results as time series, and raise an alert when a check changes state.

A run judges the complete windows in ``[since, until)`` (by default the last ``lookback``,
so windows whose labels arrived late are judged again and their rows replaced). Time windows
sit on a fixed UTC grid (multiples of ``every`` from Monday 1970-01-05: daily windows are
calendar days, weekly ones start on Mondays), so every run cuts the same windows. Count
windows continue the cuts stored by earlier runs, and end only where the time moves on.
Each window is split by model version; a check never mixes versions.

A check's *state* is its status in the newest window it could judge (``ok`` or ``alert``;
skipped windows leave it unchanged). An alert is raised when a run changes a state — not for
every alerting window — so re-judging a month of history raises one alert, not thirty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keepwell.config import MonitorSettings, WindowSpec
from keepwell.errors import ValidationError
from keepwell.logbook.logbook import Logbook
from keepwell.monitor.alerts import Notifier
from keepwell.monitor.checks import Check, build_check
from keepwell.monitor.context import VersionContext
from keepwell.monitor.results import CheckResult, Outcome, WindowBounds
from keepwell.monitor.store import AlertRecord, ResultStore
from keepwell.registry.base import utc_now
from keepwell.registry.registry import Registry

__all__ = ["Monitor", "MonitorReport"]

log = logging.getLogger("keepwell.monitor")
# The grid's origin: a Monday midnight, so weekly windows run Monday to Monday.
_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MonitorReport:
    """What one run found for one model."""

    model: str
    since: datetime
    until: datetime
    windows: int
    results: tuple[CheckResult, ...] = ()
    alerts: tuple[AlertRecord, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """How many results have each status."""
        out = {"ok": 0, "alert": 0, "skipped": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "since": self.since.isoformat(),
                "until": self.until.isoformat(), "windows": self.windows,
                "counts": self.counts(), "results": [r.to_dict() for r in self.results],
                "alerts": [a.to_dict() for a in self.alerts]}


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"{name} must be a timezone-aware datetime (e.g. in UTC).")
    return value.astimezone(UTC)


def grid_floor(moment: datetime, every: timedelta) -> datetime:
    """The start of the grid window holding ``moment`` (multiples of ``every`` from Monday
    1970-01-05, UTC)."""
    steps = (moment - _EPOCH) // every
    return _EPOCH + steps * every


class Monitor:
    """Runs the checks configured in ``keepwell.yaml`` (``monitor:``) over the logbook."""

    def __init__(self, registry: Registry, logbook: Logbook, settings: MonitorSettings, *,
                 notifier: Notifier | None = None) -> None:
        self.registry = registry
        self.logbook = logbook
        self.settings = settings
        self.store = ResultStore(registry.db)
        self.notifier = notifier or Notifier(settings.alerts)

    # -- configuration --------------------------------------------------------------------

    def window_spec(self, model: str) -> WindowSpec:
        own = self.settings.models.get(model)
        return own.window if own is not None and own.window is not None \
            else self.settings.window

    def checks(self, model: str) -> list[Check]:
        """The checks ``model`` gets: its own list from the settings, else the defaults."""
        own = self.settings.models.get(model)
        specs = own.checks if own is not None and own.checks is not None \
            else self.settings.checks
        return [build_check(spec) for spec in specs]

    # -- judging frames -------------------------------------------------------------------

    def check_frame(self, model: str, frame: pd.DataFrame, *, version: int | None = None,
                    window: WindowBounds | None = None,
                    contexts: dict[int, VersionContext] | None = None) -> list[CheckResult]:
        """Run ``model``'s checks on any frame laid out like the logbook: the features,
        ``prediction`` and ``score``/``proba_<class>``, optionally ``label``, ``latency_ms``,
        ``ts`` and ``version``. Rows are split by their ``version`` column when it exists,
        else judged as ``version`` (default: the champion). Nothing is stored."""
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError("frame must be a pandas DataFrame laid out like the "
                                  "logbook (features, prediction, scores, label).")
        if window is None:
            window = self._frame_bounds(frame)
        contexts = {} if contexts is None else contexts
        if "version" in frame.columns and version is None:
            groups: Iterator[tuple[int, pd.DataFrame]] = (
                (int(str(v)), rows) for v, rows in frame.groupby("version", sort=True))
        else:
            number = version if version is not None else \
                self.registry.get_version(f"{model}@champion").version
            groups = iter([(number, frame)])
        checks = self.checks(model)
        results = []
        for number, rows in groups:
            if number not in contexts:
                contexts[number] = VersionContext.load(self.registry, model, number)
            for check in checks:
                results.append(CheckResult(model, number, check.name, check.kind, window,
                                           len(rows), self._judge(check, rows,
                                                                  contexts[number])))
        return results

    @staticmethod
    def _judge(check: Check, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        try:
            return check.run(rows, context)
        except Exception as exc:
            log.exception("check %s on %s@%s failed", check.name, context.model,
                          context.version)
            return Outcome("error", message=f"{type(exc).__name__}: {exc}"[:500])

    @staticmethod
    def _frame_bounds(frame: pd.DataFrame) -> WindowBounds:
        if "ts" in frame.columns and len(frame):
            ts = pd.to_datetime(frame["ts"], utc=True)
            return WindowBounds(ts.min().to_pydatetime(),
                                ts.max().to_pydatetime() + timedelta(microseconds=1), "count")
        now = utc_now()
        return WindowBounds(now, now, "count")

    # -- runs over the logbook ------------------------------------------------------------

    def run(self, model: str | None = None, *, since: datetime | None = None,
            until: datetime | None = None, notify: bool = True,
            progress: Progress | None = None) -> list[MonitorReport]:
        """Judge every model (or one) over ``[since, until)`` and store the results.

        ``until`` defaults to now and ``since`` to ``until - lookback``. Only complete windows
        are judged. Returns one report per model, with the alerts this run raised.
        """
        until = _aware(until, "until") if until is not None else utc_now()
        since = _aware(since, "since") if since is not None else until - self.settings.lookback
        if since >= until:
            raise ValidationError("since must be earlier than until.")
        names = [model] if model is not None else \
            [m.name for m in self.registry.list_models()]
        if model is not None:
            self.registry.get_model(model)  # an unknown name is an error, not an empty run
        return [self._run_model(name, since, until, notify, progress) for name in names]

    def _run_model(self, model: str, since: datetime, until: datetime, notify: bool,
                   progress: Progress | None) -> MonitorReport:
        spec = self.window_spec(model)
        windows = list(self._windows(model, spec, since, until))
        contexts: dict[int, VersionContext] = {}
        results: list[CheckResult] = []
        for done, (bounds, table) in enumerate(windows, start=1):
            frame = table.to_pandas()
            results.extend(self.check_frame(model, frame, window=bounds, contexts=contexts))
            if progress is not None:
                progress(done, len(windows))
        alerts = self.store.save(model, results)
        if notify:  # after the commit: a notification never announces an unstored change
            alerts = [self.store.record_deliveries(a, self.notifier.notify(a.payload()))
                      for a in alerts]
        return MonitorReport(model, since, until, len(windows), tuple(results), tuple(alerts))

    def _windows(self, model: str, spec: WindowSpec, since: datetime, until: datetime
                 ) -> Iterator[tuple[WindowBounds, pa.Table]]:
        if spec.every is not None:
            every = spec.every
            start = grid_floor(since, every)
            table = self.logbook.predictions(model, start=start, end=until,
                                                    with_labels=True)
            if table.num_rows == 0:
                return
            stamps = table["ts"].to_numpy()
            count = int((until - start) // every)
            edges = [start + every * k for k in range(count + 1)]
            cuts = np.searchsorted(stamps, np.array(
                [np.datetime64(e.replace(tzinfo=None), "us") for e in edges]), side="left")
            for k in range(count):
                lo, hi = int(cuts[k]), int(cuts[k + 1])
                if hi > lo:
                    yield WindowBounds(edges[k], edges[k + 1], "time"), table.slice(lo, hi - lo)
            return
        size = spec.size
        assert size is not None
        # Cut where earlier runs cut: from the first stored window still in the lookback, else
        # from the end of the newest stored one (rows logged since are never skipped), else
        # from the first logged row.
        stored = self.store.count_windows(model, since)
        anchor = stored[0].start if stored else self.store.last_count_window_end(model)
        table = self.logbook.predictions(model, start=anchor, end=until, with_labels=True)
        stamps = table["ts"].to_numpy()
        lo, n = 0, table.num_rows
        while n - lo >= size:
            hi = lo + size
            # A window ends where the time moves on, so two windows never share bounds.
            hi = int(np.searchsorted(stamps, stamps[hi - 1], side="right"))
            first, last = table["ts"][lo].as_py(), table["ts"][hi - 1].as_py()
            yield (WindowBounds(first, last + timedelta(microseconds=1), "count"),
                   table.slice(lo, hi - lo))
            lo = hi

    # -- reading back ---------------------------------------------------------------------

    def history(self, model: str, *, check: str | None = None, version: int | None = None,
                since: datetime | None = None, until: datetime | None = None
                ) -> list[CheckResult]:
        """Stored results, oldest window first."""
        return self.store.history(model, check=check, version=version, since=since,
                                  until=until)

    def history_frame(self, model: str, **filters: Any) -> pd.DataFrame:
        """:meth:`history` as a DataFrame, one row per result (for plots and notebooks)."""
        rows = [r.to_dict() for r in self.history(model, **filters)]
        columns = ["model", "version", "check", "kind", "window_start", "window_end",
                   "window_by", "n", "status", "value", "threshold", "message"]
        frame = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
        for c in ("window_start", "window_end"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        return frame

    def alerts(self, model: str | None = None, *, limit: int = 100) -> list[AlertRecord]:
        return self.store.alerts(model, limit=limit)


