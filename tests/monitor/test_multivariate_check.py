"""The multivariate drift check: a change in how features go together, which no single
column shows, is caught from the PCA fitted at registration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
from tests.monitor.conftest import DAY0, MODEL, Production

import keepwell as kw

CHECKS = [{"kind": "data_drift"}, {"kind": "multivariate_drift"}]


def couple_income_to_age(X: pd.DataFrame, outputs: pd.DataFrame) -> None:
    """The same ages and the same incomes, but the oldest now earn the most."""
    order = np.argsort(X["age"].to_numpy())
    income = np.sort(X["income"].to_numpy())
    paired = np.empty_like(income)
    paired[order] = income
    X["income"] = paired


def test_a_joint_change_alerts_where_the_columns_do_not(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=CHECKS)
    prod = Production(ws)
    assert ws.registry.get_version(f"{MODEL}@1").monitoring_sha256 is not None
    for day in range(3):
        prod.log_day(day, n=1000)
    prod.log_day(3, n=1000, tamper=couple_income_to_age)
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=4))[0]
    statuses = [(r.window.start.day - DAY0.day, r.check, r.status) for r in report.results]
    assert [s for d, c, s in statuses if c == "data_drift"] == ["ok"] * 4
    assert [s for d, c, s in statuses if c == "multivariate_drift"] == ["ok"] * 3 + ["alert"]
    alerting = report.results[-1]
    assert alerting.outcome.value > alerting.outcome.threshold
    assert "outside the reference band" in alerting.outcome.message


def test_small_windows_get_a_wider_band(make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=CHECKS[1:])
    prod = Production(ws)
    for day in range(10):
        prod.log_day(day, n=120)  # a tenth of the 300-row reference chunks
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=10))[0]
    assert {r.status for r in report.results} == {"ok"}
    assert all(r.outcome.details["widened_by"] > 1.5 for r in report.results)
