"""Performance estimated without labels (CBPE, calibrated on the holdout at registration)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pytest
from tests.conftest import make_classification_frame
from tests.monitor.conftest import DAY0, MODEL, Production

import keepwell as kw
from keepwell.stats.estimation import CBPE

CHECK = [{"kind": "estimated_performance", "metric": "accuracy", "max_drop": 0.03}]


def test_the_estimate_is_cbpe_fitted_on_the_holdout_and_needs_no_labels(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=CHECK)
    prod = Production(ws)
    prod.log_day(0, n=2000, labels=False)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0].results
    assert result.status == "ok"
    # The same estimate, from a CBPE fitted by hand on the same holdout.
    X_hold, y_hold = make_classification_frame(1000, seed=2)
    cbpe = CBPE().fit(y_hold, prod.model.predict_proba(X_hold)[:, 1],
                      y_pred=prod.model.predict(X_hold))
    X, y = make_classification_frame(2000, seed=100)
    expected = cbpe.estimate(prod.model.predict_proba(X)[:, 1],
                             y_pred=prod.model.predict(X))["accuracy"]
    assert result.outcome.value == pytest.approx(expected.value, abs=1e-12)
    assert result.outcome.threshold == pytest.approx(expected.reference - 0.03, abs=1e-12)
    # ...and it tracks the accuracy the labels will show.
    assert result.outcome.value == pytest.approx((prod.model.predict(X) == y).mean(),
                                                 abs=0.03)


def unsure(X: pd.DataFrame, outputs: pd.DataFrame) -> None:
    """Scores squeezed towards 0.5: a model that became unsure of everything."""
    outputs["score"] = 0.5 + (outputs["score"] - 0.5) * 0.05
    outputs["prediction"] = (outputs["score"] >= 0.5).astype(int)


def test_scores_that_lost_their_confidence_raise_an_alert(
        make_workspace: Callable[..., kw.Workspace]) -> None:
    ws = make_workspace(window={"every": "1d"}, checks=CHECK)
    prod = Production(ws)
    prod.log_day(0, n=2000, labels=False, tamper=unsure)
    (result,) = ws.monitor.run(MODEL, since=DAY0, until=DAY0 + timedelta(days=1))[0].results
    assert result.status == "alert"
    assert result.outcome.details["estimates"]["accuracy"]["upper"] < result.outcome.threshold
