"""The monitor over a real logbook and metadata database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from tests.conftest import make_classification_frame
from tests.monitor.conftest import DAY0, MODEL, Production, fit_model

import keepwell as kw
from keepwell.errors import ModelNotFoundError, ValidationError
from keepwell.monitor.runner import grid_floor
from keepwell.registry.evaluation import model_outputs

DRIFT_ONLY = [{"kind": "data_drift"}, {"kind": "prediction_drift"},
              {"kind": "latency", "max_ms": 50}]


def test_daily_windows_sit_on_the_utc_grid_and_only_complete_ones_are_judged(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=DRIFT_ONLY)
    prod = Production(ws)
    for day in range(3):
        prod.log_day(day, latency_ms=12.0)
    # until cuts the third day in half: that window is not complete and is left for later.
    reports = ws.monitor.run(MODEL, since=DAY0 + timedelta(hours=7),
                             until=DAY0 + timedelta(days=2, hours=12))
    report = reports[0]
    assert report.windows == 2
    starts = sorted({r.window.start for r in report.results})
    assert starts == [DAY0, DAY0 + timedelta(days=1)]
    assert all(r.window.end - r.window.start == timedelta(days=1) for r in report.results)
    assert {r.n for r in report.results} == {400}
    assert {(r.check, r.status) for r in report.results} == {
        ("data_drift", "ok"), ("prediction_drift", "ok"), ("latency", "ok")}
    latency = next(r for r in report.results if r.check == "latency")
    assert latency.outcome.value == pytest.approx(12.0)
    assert latency.outcome.threshold == 50
    assert report.alerts == ()


def test_a_planted_shift_alerts_once_and_recovery_resolves_it(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=DRIFT_ONLY)
    prod = Production(ws)
    prod.log_day(0)
    first = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0]
    assert [r.status for r in first.results if r.check == "data_drift"] == ["ok"]
    assert first.alerts == ()  # a new series that starts ok raises nothing

    prod.log_day(1, age_shift=15.0)  # 1.25 standard deviations
    prod.log_day(2, age_shift=15.0)
    second = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=3))[0]
    drift = [r for r in second.results if r.check == "data_drift"]
    assert [r.status for r in drift] == ["ok", "alert", "alert"]
    assert drift[1].outcome.details["drifted_columns"] == ["age"]
    # Two alerting windows, one state change: one alert per check (older ages move the
    # model's scores too, so its outputs drift with the feature).
    assert [(a.check, a.previous_status, a.status) for a in second.alerts] == [
        ("data_drift", "ok", "alert"), ("prediction_drift", "ok", "alert")]
    assert "age" in second.alerts[0].message

    again = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=3))[0]
    assert again.alerts == ()  # judging the same windows again changes no state

    prod.log_day(3)
    fourth = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=4))[0]
    assert [(a.previous_status, a.status) for a in fourth.alerts
            if a.check == "data_drift"] == [("alert", "ok")]
    stored = ws.monitor.alerts(MODEL)
    assert [(a.check, a.previous_status, a.status) for a in stored if a.check == "data_drift"
            ] == [("data_drift", "alert", "ok"), ("data_drift", "ok", "alert")]


def test_judging_a_window_again_replaces_its_results(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=DRIFT_ONLY)
    prod = Production(ws)
    prod.log_day(0)
    for _ in range(3):
        ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))
    history = ws.monitor.history(MODEL)
    assert len(history) == 3  # three checks, one window, however many runs
    frame = ws.monitor.history_frame(MODEL, check="data_drift")
    assert list(frame["status"]) == ["ok"]
    assert frame["window_start"].iloc[0] == pd.Timestamp(DAY0)


def test_windows_are_split_by_version(make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=DRIFT_ONLY[:1])
    prod = Production(ws)
    X2, y2 = make_classification_frame(3000, seed=7)
    ws.register(MODEL, fit_model(X2, y2), X2, y2)
    prod.log_day(0, n=300, version=1)
    prod.log_day(0, n=200, version=2, seed=999)
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0]
    assert sorted((r.version, r.n) for r in report.results) == [(1, 300), (2, 200)]


def test_count_windows_keep_their_cuts_across_runs(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"size": 250}, checks=DRIFT_ONLY[:1])
    prod = Production(ws)
    prod.log_day(0)  # 400 rows: one full window of 250, 150 waiting
    first = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=5))[0]
    assert [r.n for r in first.results] == [250]
    prod.log_day(1)  # 800 rows: windows 0-250, 250-500, 500-750
    second = ws.monitor.run(MODEL, since=DAY0 + timedelta(hours=1),
                            until=DAY0 + timedelta(days=5))[0]
    assert [r.n for r in second.results] == [250, 250, 250]
    assert second.results[0].window == first.results[0].window
    assert len(ws.monitor.history(MODEL)) == 3


def test_check_frame_judges_any_dataframe(production: Production) -> None:
    X, _ = make_classification_frame(500, seed=5)
    X["age"] += 20
    frame = pd.concat([X, model_outputs(production.model, X, "binary")], axis=1)
    results = production.ws.monitor.check_frame(MODEL, frame)
    drift = next(r for r in results if r.check == "data_drift")
    assert drift.status == "alert" and drift.version == 1 and drift.n == 500
    assert production.ws.monitor.history(MODEL) == []  # nothing stored


def test_bad_arguments_are_refused(production: Production) -> None:
    monitor = production.ws.monitor
    with pytest.raises(ValidationError, match="timezone-aware"):
        monitor.run(MODEL, since=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="earlier"):
        monitor.run(MODEL, since=DAY0, until=DAY0)
    with pytest.raises(ModelNotFoundError):
        monitor.run("nobody")
    with pytest.raises(ValidationError, match="DataFrame"):
        monitor.check_frame(MODEL, [1, 2])  # type: ignore[arg-type]


def test_grid_floor_is_stable() -> None:
    day = timedelta(days=1)
    assert grid_floor(datetime(2026, 3, 1, 17, tzinfo=UTC), day) == datetime(2026, 3, 1,
                                                                             tzinfo=UTC)
    six = timedelta(hours=6)
    assert grid_floor(datetime(2026, 3, 1, 17, 59, tzinfo=UTC), six) == datetime(
        2026, 3, 1, 12, tzinfo=UTC)
