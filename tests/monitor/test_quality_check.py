"""The data-quality check on logged windows: a clean day passes, a broken feed fails."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
from tests.monitor.conftest import DAY0, MODEL, Production

import keepwell as kw


def broken_feed(X: pd.DataFrame, outputs: pd.DataFrame) -> None:
    """A new region appears for 40 rows and the age field goes missing for 80."""
    region = X["region"].astype(object)
    region.iloc[:40] = "west"
    X["region"] = region
    X.loc[X.index[100:180], "age"] = np.nan


def test_a_broken_feed_fails_and_a_clean_one_passes(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=[{"kind": "data_quality"}])
    prod = Production(ws)
    prod.log_day(0)
    prod.log_day(1, tamper=broken_feed)
    report = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=2))[0]
    clean, broken = report.results
    assert clean.status == "ok", clean.outcome.message
    assert broken.status == "alert"
    columns = {c["name"]: c for c in broken.outcome.details["columns"]}
    assert columns["region"]["unseen"]["count"] == 40
    assert columns["age"]["missing"]["count"] == 80
    assert set(columns["region"]["problems"]) == {"unseen_categories"}
    assert "missing_rate" in columns["age"]["problems"]
    assert columns["income"]["problems"] == []
    assert "region" in broken.outcome.message and "age" in broken.outcome.message
    # The logbook's own columns (request_id, ts, prediction, ...) are not schema problems.
    assert broken.outcome.details["extra_columns"] == []
