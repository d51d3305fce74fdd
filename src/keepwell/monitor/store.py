"""Check results and alerts in the metadata database: the monitor's time series."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from keepwell.errors import ModelNotFoundError
from keepwell.monitor.results import CheckResult, Outcome, WindowBounds, finite
from keepwell.registry.base import utc_now
from keepwell.store.db import Database
from keepwell.store.tables import models, monitor_alerts, monitor_results

__all__ = ["AlertRecord", "ResultStore", "SeriesState"]

# The statuses that make a check's state; skipped and failed windows leave it as it was.
_STATEFUL = ("ok", "alert")


@dataclass(frozen=True)
class SeriesState:
    """A check's state for one version: the status of its newest judged window."""

    status: str
    window_end: datetime
    value: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True)
class AlertRecord:
    """A stored state change and what became of each notification."""

    id: int
    model: str
    version: int
    check: str
    previous_status: str | None
    status: str
    window_end: datetime
    value: float | None
    threshold: float | None
    message: str
    raised_at: datetime
    deliveries: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        """What a notification says (JSON-safe)."""
        return {"model": self.model, "version": self.version, "check": self.check,
                "previous_status": self.previous_status, "status": self.status,
                "window_end": self.window_end.isoformat(), "value": finite(self.value),
                "threshold": finite(self.threshold), "message": self.message}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "version": self.version,
                "check": self.check, "previous_status": self.previous_status,
                "status": self.status, "window_end": self.window_end.isoformat(),
                "value": finite(self.value), "threshold": finite(self.threshold),
                "message": self.message, "raised_at": self.raised_at.isoformat(),
                "deliveries": self.deliveries}


class ResultStore:
    """Reads and writes ``monitor_results`` and ``monitor_alerts``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _model_id(conn: Connection, model: str) -> int:
        found = conn.execute(select(models.c.id).where(models.c.name == model)).scalar()
        if found is None:
            raise ModelNotFoundError(f"model {model!r} is not registered; see `keepwell models`.")
        return int(found)

    def save(self, model: str, results: Sequence[CheckResult]) -> list[AlertRecord]:
        """Store results and the state changes they make, in one transaction.

        A window judged again replaces its row. The alerts are found and stored under the same
        write lock as the results, so two runs at once never both raise one change; their
        ``deliveries`` are empty until :meth:`record_deliveries`.
        """
        if not results:
            return []
        now = utc_now()
        t = monitor_results.c
        with self.db.write() as conn:
            model_id = self._model_id(conn, model)
            before = self._states(conn, model_id)
            for r in results:
                conn.execute(delete(monitor_results).where(and_(
                    t.model_id == model_id, t.version == r.version, t.check_name == r.check,
                    t.window_start == r.window.start, t.window_end == r.window.end)))
            conn.execute(insert(monitor_results), [{
                "model_id": model_id, "version": r.version, "check_name": r.check,
                "kind": r.kind, "window_start": r.window.start, "window_end": r.window.end,
                "window_by": r.window.by, "n": r.n, "status": r.status,
                "value": finite(r.outcome.value), "threshold": finite(r.outcome.threshold),
                "details": {"message": r.outcome.message, **r.outcome.details},
                "evaluated_at": now} for r in results])
            changes = []
            for (version, check), state in sorted(self._states(conn, model_id).items()):
                previous = before.get((version, check))
                previous_status = previous.status if previous is not None else None
                if state.status == previous_status or (previous is None
                                                        and state.status == "ok"):
                    continue
                row_id = conn.execute(insert(monitor_alerts).values(
                    model_id=model_id, version=version, check_name=check,
                    previous_status=previous_status, status=state.status,
                    window_end=state.window_end, value=finite(state.value),
                    threshold=finite(state.threshold), message=state.message, raised_at=now,
                    deliveries=[])).inserted_primary_key[0]  # type: ignore[index]
                changes.append(AlertRecord(int(row_id), model, version, check,
                                           previous_status, state.status, state.window_end,
                                           state.value, state.threshold, state.message, now,
                                           []))
        return changes

    def record_deliveries(self, alert: AlertRecord, deliveries: list[dict[str, Any]]
                          ) -> AlertRecord:
        """Store what became of an alert's notifications."""
        with self.db.write() as conn:
            conn.execute(update(monitor_alerts).where(monitor_alerts.c.id == alert.id)
                         .values(deliveries=deliveries))
        return dataclasses.replace(alert, deliveries=deliveries)

    def states(self, model: str) -> dict[tuple[int, str], SeriesState]:
        """Each (version, check) series' current state."""
        with self.db.read() as conn:
            return self._states(conn, self._model_id(conn, model))

    @staticmethod
    def _states(conn: Connection, model_id: int) -> dict[tuple[int, str], SeriesState]:
        t = monitor_results.c
        newest = (select(t.version, t.check_name, func.max(t.window_end).label("end"))
                  .where(t.model_id == model_id, t.status.in_(_STATEFUL))
                  .group_by(t.version, t.check_name).subquery())
        rows = conn.execute(
            select(t.version, t.check_name, t.status, t.window_end, t.value, t.threshold,
                   t.details)
            .join(newest, and_(t.version == newest.c.version,
                               t.check_name == newest.c.check_name,
                               t.window_end == newest.c.end))
            .where(t.model_id == model_id, t.status.in_(_STATEFUL))).all()
        return {(r.version, r.check_name): SeriesState(r.status, r.window_end, r.value,
                                                       r.threshold, r.details.get("message", ""))
                for r in rows}

    def history(self, model: str, *, check: str | None = None, version: int | None = None,
                since: datetime | None = None, until: datetime | None = None
                ) -> list[CheckResult]:
        """Stored results of ``model``, oldest window first."""
        t = monitor_results.c
        with self.db.read() as conn:
            query = select(monitor_results).where(t.model_id == self._model_id(conn, model))
            for column, value in ((t.check_name, check), (t.version, version)):
                if value is not None:
                    query = query.where(column == value)
            if since is not None:
                query = query.where(t.window_end > since)
            if until is not None:
                query = query.where(t.window_start < until)
            rows = conn.execute(query.order_by(t.window_end, t.version, t.check_name)).all()
        out = []
        for r in rows:
            details = dict(r.details)
            message = details.pop("message", "")
            out.append(CheckResult(model, r.version, r.check_name, r.kind,
                                   WindowBounds(r.window_start, r.window_end, r.window_by), r.n,
                                   Outcome(r.status, r.value, r.threshold, message, details)))
        return out

    def count_windows(self, model: str, since: datetime) -> list[WindowBounds]:
        """Stored count-cut windows ending after ``since``, so a new run cuts the same ones."""
        t = monitor_results.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.window_start, t.window_end).distinct()
                .where(t.model_id == self._model_id(conn, model), t.window_by == "count",
                       t.window_end > since)
                .order_by(t.window_start)).all()
        return [WindowBounds(r.window_start, r.window_end, "count") for r in rows]

    def last_count_window_end(self, model: str) -> datetime | None:
        """Where the newest stored count-cut window ended, if any."""
        t = monitor_results.c
        with self.db.read() as conn:
            end: datetime | None = conn.execute(
                select(func.max(t.window_end)).where(t.model_id == self._model_id(conn, model),
                                                     t.window_by == "count")).scalar()
        return end

    def alerts(self, model: str | None = None, *, limit: int = 100) -> list[AlertRecord]:
        """The newest alerts, newest first."""
        a = monitor_alerts.c
        query = select(monitor_alerts, models.c.name).join(models, models.c.id == a.model_id)
        if model is not None:
            query = query.where(models.c.name == model)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(a.id.desc()).limit(limit)).all()
        return [AlertRecord(r.id, r.name, r.version, r.check_name, r.previous_status, r.status,
                            r.window_end, r.value, r.threshold, r.message, r.raised_at,
                            list(r.deliveries)) for r in rows]
