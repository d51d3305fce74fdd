"""The default monitor on real data: ACS employment, 2015 as reference, 2016-2018 as
production. No dataset-level drift alarm over three years of monthly windows; a planted shift
of documented size raises one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

import keepwell as kw
from keepwell.config import MonitorSettings, Settings
from keepwell.registry.evaluation import model_outputs

DATA = Path(__file__).resolve().parents[2] / "data" / "acs-employment-ma"
FEATURES = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
            "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]
# Every age moved up by 6 years: a quarter of the age's standard deviation (23.6 years), the
# size the default KS threshold (D >= 0.1) is documented to catch.
PLANTED_YEARS = 6


def log_year(ws: kw.Workspace, model: object, people: pd.DataFrame, year: int,
             truth: pd.Series) -> None:
    """People arrive in random order, spread evenly over the year."""
    people = people.sample(frac=1.0, random_state=year)
    X = people[FEATURES]
    start = pd.Timestamp(f"{year}-01-01", tz="UTC")
    seconds = np.linspace(0, 365 * 86400 - 1, len(people)).astype("int64")
    ts = start + pd.to_timedelta(seconds, unit="s")
    ids = ws.logbook.append_frame("employment", 1, X, model_outputs(model, X, "binary"),
                                  ts=ts)
    ws.logbook.add_feedback("employment", truth.loc[people["id"]].tolist(), request_ids=ids)


@pytest.mark.slow
def test_three_years_of_acs_raise_no_drift_alarm_and_a_planted_shift_does(
        tmp_path: Path) -> None:
    reference = pd.read_parquet(DATA / "employment_MA_reference.pq")
    analysis = pd.read_parquet(DATA / "employment_MA_analysis.pq")
    truth = pd.read_parquet(DATA / "employment_MA_analysis_target.pq").set_index("id")[
        "employed"]
    X, y = reference[FEATURES], reference["employed"]
    X_train, X_hold, y_train, y_hold = train_test_split(X, y, test_size=0.2, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(X_train, y_train)
    settings = Settings.for_workspace(
        tmp_path / "ws", monitor=MonitorSettings.model_validate({"window": {"every": "30d"}}))
    with kw.Workspace(settings) as ws:
        ws.register("employment", model, X_train, y_train, holdout=(X_hold, y_hold),
                    sensitive_features=["SEX"], alias="champion")
        for year, people in analysis.groupby("year"):
            log_year(ws, model, people, int(str(year)), truth)
        ws.logbook.seal()
        report = ws.monitor.run("employment", since=datetime(2016, 1, 1, tzinfo=UTC),
                                until=datetime(2018, 12, 1, tzinfo=UTC))[0]
        drift = [r for r in report.results if r.check == "data_drift"]
        assert len(drift) >= 34 and {r.status for r in drift} == {"ok"}
        assert {r.status for r in report.results if r.check == "prediction_drift"} == {"ok"}
        performance = [r for r in report.results if r.check == "performance"]
        assert {r.status for r in performance} == {"ok"}  # accuracy holds up, as in the demo

        shifted = analysis[analysis["year"] == 2018].sample(6000, random_state=1)
        shifted = shifted.assign(AGEP=shifted["AGEP"] + PLANTED_YEARS)
        frame = pd.concat([shifted[FEATURES].reset_index(drop=True),
                           model_outputs(model, shifted[FEATURES], "binary")
                           .reset_index(drop=True)], axis=1)
        result = next(r for r in ws.monitor.check_frame("employment", frame)
                      if r.check == "data_drift")
        assert result.status == "alert"
        assert "AGEP" in result.outcome.details["drifted_columns"]
