"""The fairness check over the model's sensitive features, with and without labels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference
from tests.conftest import make_classification_frame
from tests.monitor.conftest import DAY0, MODEL, Production

import keepwell as kw

UNTIL = DAY0 + timedelta(days=1)


def deny_south(X: pd.DataFrame, outputs: pd.DataFrame) -> None:
    """Decline four in five applicants from the south."""
    south = (X["region"] == "south").to_numpy()
    rows = south & (pd.Series(range(len(X))) % 5 != 0).to_numpy()
    outputs.loc[rows, "prediction"] = 0


def test_disparate_impact_alerts_without_labels_and_matches_fairlearn(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"},
                        checks=[{"kind": "fairness", "min_group_size": 100}])
    prod = Production(ws)
    prod.log_day(0, n=1500, labels=False, tamper=deny_south)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=UNTIL)[0].results
    assert result.status == "alert" and result.outcome.threshold == 0.8
    assert "below 0.8" in result.outcome.message and "region" in result.outcome.message
    X, _ = make_classification_frame(1500, seed=100)
    out = pd.DataFrame({"prediction": prod.model.predict(X)})
    deny_south(X, out)
    expected = demographic_parity_ratio(out["prediction"], out["prediction"],
                                        sensitive_features=X["region"])
    assert result.outcome.value == pytest.approx(expected, abs=1e-12)


def test_equalized_odds_uses_the_labels_and_matches_fairlearn(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=[
        {"kind": "fairness", "name": "eo", "metric": "equalized_odds_difference",
         "threshold": 0.6, "min_group_size": 50}])
    prod = Production(ws)
    prod.log_day(0, n=1500)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=UNTIL)[0].results
    X, y = make_classification_frame(1500, seed=100)
    expected = equalized_odds_difference(y, prod.model.predict(X),
                                         sensitive_features=X["region"])
    # The model leans on region (the data were made so), within the bound set here.
    assert result.status == "ok" and 0.5 < expected < 0.6
    assert result.outcome.value == pytest.approx(expected, abs=1e-12)


def test_small_groups_are_not_compared(make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=[{"kind": "fairness"}])  # 300 a group
    prod = Production(ws)
    prod.log_day(0, n=400, labels=False, tamper=deny_south)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=UNTIL)[0].results
    assert result.status == "skipped" and "undefined" in result.outcome.message


def test_a_model_without_sensitive_features_is_skipped(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"},
                        checks=[{"kind": "fairness", "sensitive": ["colour"]}])
    prod = Production(ws)
    prod.log_day(0)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=UNTIL)[0].results
    assert result.status == "skipped" and "colour" in result.outcome.message
