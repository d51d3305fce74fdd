"""Performance over windows as labels arrive late, judged against the holdout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from tests.conftest import make_classification_frame
from tests.monitor.conftest import DAY0, MODEL, Production

import keepwell as kw
from keepwell.config import MonitorSettings

PERFORMANCE = [{"kind": "performance", "metric": "accuracy", "max_drop": 0.05,
                "min_rows": 50},
               {"kind": "performance", "name": "auc", "metric": "roc_auc", "max_drop": 0.05,
                "min_rows": 50}]


def test_late_labels_turn_a_skipped_window_into_a_judged_one(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=PERFORMANCE)
    prod = Production(ws)
    ids = prod.log_day(0, labels=False)
    until = DAY0 + timedelta(days=1)
    first = ws.monitor.run(MODEL, since=DAY0, until=until)[0]
    assert {r.status for r in first.results} == {"skipped"}
    assert "0 of 400 predictions have labels" in first.results[0].outcome.message

    X, y = make_classification_frame(400, seed=100)  # the day's rows and their truth
    ws.logbook.add_feedback(MODEL, y.tolist()[:300], request_ids=ids[:300])
    second = ws.monitor.run(MODEL, since=DAY0, until=until)[0]
    by_check = {r.check: r for r in second.results}
    assert by_check["performance"].status == "ok"
    assert by_check["performance"].outcome.details["coverage"] == pytest.approx(0.75)
    predicted = prod.model.predict(X)[:300]
    assert by_check["performance"].outcome.value == pytest.approx(
        accuracy_score(y[:300], predicted), abs=1e-12)
    assert by_check["auc"].outcome.value == pytest.approx(
        roc_auc_score(y[:300], prod.model.predict_proba(X)[:300, 1]), abs=1e-12)
    holdout = prod.version.metrics["accuracy"]
    assert by_check["performance"].outcome.threshold == pytest.approx(holdout - 0.05)
    assert by_check["performance"].outcome.details["delta"]["accuracy"] == pytest.approx(
        by_check["performance"].outcome.value - holdout)
    assert len(ws.monitor.history(MODEL)) == 2  # the window's rows were replaced


def test_a_decayed_model_alerts(make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=PERFORMANCE)
    prod = Production(ws)
    ids = prod.log_day(0, labels=False)
    _, y = make_classification_frame(400, seed=100)
    rng = np.random.default_rng(0)
    flipped = np.where(rng.random(400) < 0.3, 1 - y, y)  # the world changed for 30 %
    ws.logbook.add_feedback(MODEL, flipped.tolist(), request_ids=ids)
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0]
    result = next(r for r in report.results if r.check == "performance")
    assert result.status == "alert"
    assert "worse than the holdout" in result.outcome.message
    assert {a.check for a in report.alerts} >= {"performance"}


def test_labels_logged_as_text_are_read_as_the_model_classes(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=PERFORMANCE[:1])
    prod = Production(ws)
    ids = prod.log_day(0, labels=False)
    X, y = make_classification_frame(400, seed=100)
    ws.logbook.add_feedback(MODEL, [str(v) for v in y], request_ids=ids)
    result = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0].results[0]
    assert result.status == "ok"
    assert result.outcome.value == pytest.approx(accuracy_score(y, prod.model.predict(X)))


def test_an_unknown_metric_is_an_error_result_naming_the_choices(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"},
                        checks=[{"kind": "performance", "metric": "acuracy", "min_rows": 1}])
    prod = Production(ws)
    prod.log_day(0)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0].results
    assert result.status == "error"
    assert "acuracy" in result.outcome.message and "accuracy" in result.outcome.message


def test_bad_check_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="max_drop"):
        MonitorSettings.model_validate({"checks": [{"kind": "performance",
                                                    "max_drop": -1}]})
    with pytest.raises(ValueError, match="unique name"):
        MonitorSettings.model_validate({"checks": [{"kind": "latency"}, {"kind": "latency"}]})
