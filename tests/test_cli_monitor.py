"""``keepwell monitor run|history|alerts|checks`` on a real project folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.cli_support import run, run_json
from tests.monitor.conftest import MODEL, Production

from keepwell.config import ENVIRONMENT_VARIABLES, load_settings
from keepwell.workspace import Workspace

SINCE, UNTIL = "2026-01-05", "2026-01-08"






@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose model saw two normal days and one day of older applicants."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEPWELL_ACTOR", "tester")
    monkeypatch.chdir(tmp_path)
    run("init")
    config = yaml.safe_load((tmp_path / "keepwell.yaml").read_text())
    config["monitor"]["checks"] = [{"kind": "data_drift"}, {"kind": "latency", "max_ms": 5}]
    (tmp_path / "keepwell.yaml").write_text(yaml.safe_dump(config))
    with Workspace(load_settings(tmp_path / "keepwell.yaml", environ={})) as ws:
        prod = Production(ws)
        prod.log_day(0, latency_ms=2.0)
        prod.log_day(1, latency_ms=2.0)
        prod.log_day(2, age_shift=15.0, latency_ms=2.0)
    return tmp_path


def test_run_stores_results_and_reports_the_state_change(project: Path) -> None:
    data = run_json("monitor", "run", MODEL, "--since", SINCE, "--until", UNTIL)
    (report,) = data["reports"]
    assert report["windows"] == 3
    assert report["counts"] == {"ok": 5, "alert": 1, "skipped": 0, "error": 0}
    assert [(a["check"], a["status"]) for a in report["alerts"]] == [("data_drift", "alert")]
    assert data["alerting"] == [{"model": MODEL, "version": 1, "check": "data_drift",
                                 "message": report["alerts"][0]["message"]}]
    history = run_json("monitor", "history", MODEL, "--check", "data_drift")
    assert [h["status"] for h in history] == ["ok", "ok", "alert"]
    assert history[2]["details"]["drifted_columns"] == ["age"]
    alerts = run_json("monitor", "alerts")
    # The series was new to this run: one alert, from no state to alert.
    assert [(a["check"], a["previous_status"], a["status"]) for a in alerts] == [
        ("data_drift", None, "alert")]
    # People read a table; the alert is in it.
    text = run("monitor", "run", MODEL, "--since", SINCE, "--until", UNTIL).stdout
    assert "3 windows" in text and "No check changed state." in text


def test_fail_on_alert_exits_3(project: Path) -> None:
    run("monitor", "run", MODEL, "--since", SINCE, "--until", "2026-01-07",
        "--fail-on-alert")
    run("monitor", "run", MODEL, "--since", SINCE, "--until", UNTIL, "--fail-on-alert",
        code=3)


def test_checks_lists_what_the_settings_give(project: Path) -> None:
    data = run_json("monitor", "checks", MODEL)
    assert data["window"] == {"every": "P1D", "size": None}
    assert [c["name"] for c in data["checks"]] == ["data_drift", "latency"]
    assert data["checks"][1]["max_ms"] == 5


def test_bad_input_is_named(project: Path) -> None:
    result = run("monitor", "run", MODEL, "--since", "yesterday", code=2)
    assert "--since" in result.stderr and "ISO 8601" in result.stderr
    result = run("monitor", "history", "nobody", code=2)
    assert "nobody" in result.stderr
    config = yaml.safe_load((project / "keepwell.yaml").read_text())
    config["monitor"]["window"] = {"every": "1d", "size": 10}
    (project / "keepwell.yaml").write_text(yaml.safe_dump(config))
    result = run("monitor", "run", code=2)
    assert "monitor.window" in result.stderr and "exactly one" in result.stderr
