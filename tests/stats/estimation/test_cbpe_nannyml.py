"""Cross-check against NannyML 0.13.1's CBPE on the same data, chunk by chunk.

The data are ``test_cbpe.py``'s: the ACS employment model (binary; reference 30,000 people,
six chunks of 5,000 from an ageing population) and a three-class logistic regression on
shifted synthetic data (reference 20,000 rows, four chunks of 5,000). NannyML runs once, in
``.venv-peers`` (``tests/peers.py``), with ``chunk_size=5000`` and keepwell with the same
chunks for its alert thresholds.

Asked for: estimates within 0.01 of NannyML's. keepwell rebuilds NannyML's calibration
decision, calibrator, estimators and sampling errors step for step, so the agreement is held
far tighter than that:

- estimated values within 1e-6 (seen: 4e-9 for ROC AUC, whose cumulative sums NannyML rounds
  to 5 decimals and keepwell does not; 1e-14 for the others);
- sampling errors within 1e-9 relative (seen: 3e-16), confidence bounds within 1e-6;
- alert thresholds within 1e-12, alerts equal, the calibration decision of every class equal
  (ACS: calibrated; multiclass: one class left as it is, two calibrated, so both branches
  are compared);
- realised metrics within 1e-12 (NannyML computes them with scikit-learn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tests.peers import run_peer

from keepwell.stats.estimation import METRICS

from .test_cbpe import CHUNK, acs_binary, chunks, fitted, synthetic_multiclass

PEER_SCRIPT = f"""
import json
import pandas as pd
import nannyml as nml

METRICS = {list(METRICS)!r}
out = {{}}
for kind, proba in (("binary", "s"), ("multiclass", {{"a": "pa", "b": "pb", "c": "pc"}})):
    reference = pd.read_parquet(INPUT / f"{{kind}}_reference.parquet")
    analysis = pd.read_parquet(INPUT / f"{{kind}}_analysis.parquet")
    estimator = nml.CBPE(metrics=METRICS, y_pred_proba=proba, y_pred="p", y_true="y",
                         chunk_size={CHUNK}, problem_type="classification_" + kind)
    estimator.fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    if kind == "binary":
        calibrated = [bool(estimator.needs_calibration)]
    else:
        calibrated = [type(estimator._calibrators[c]).__name__ != "NoopCalibrator"
                      for c in sorted(proba)]
    out[kind] = {{
        "calibrated": calibrated,
        "metrics": {{m: {{column: frame[(m, column)].tolist() for column in (
            "value", "sampling_error", "realized", "upper_confidence_boundary",
            "lower_confidence_boundary", "upper_threshold", "lower_threshold", "alert")}}
            for m in METRICS}},
    }}
print(json.dumps(out))
"""


def nannyml_results(folder: Path) -> dict[str, Any]:
    frames = {}
    for kind, (reference, analysis) in (("binary", acs_binary()),
                                        ("multiclass", synthetic_multiclass())):
        frames[f"{kind}_reference"] = reference.reset_index(drop=True)
        frames[f"{kind}_analysis"] = analysis.reset_index(drop=True)
    result: dict[str, Any] = run_peer(PEER_SCRIPT, folder, **frames)
    return result


def test_cbpe_is_nannymls_chunk_by_chunk(tmp_path: Path) -> None:
    """One test, so that NannyML runs once even when pytest-xdist spreads the tests."""
    theirs_all = nannyml_results(tmp_path)
    for kind in ("binary", "multiclass"):
        cbpe, analysis, columns = fitted(kind)
        assert list(cbpe.calibrated_) == theirs_all[kind]["calibrated"], kind
        parts = chunks(analysis)
        results = [cbpe.estimate(c[columns], c["p"]) for c in parts]
        realised = [cbpe.realized(c["y"], c[columns], c["p"]) for c in parts]
        for metric in METRICS:
            theirs = theirs_all[kind]["metrics"][metric]
            mine = [r[metric] for r in results]
            where = f"{kind} {metric}"
            assert len(mine) == len(theirs["value"]) == len(parts), where

            def close(ours: list[Any], key: str, rtol: float = 0.0, atol: float = 0.0,
                      where: str = where, theirs: dict[str, Any] = theirs) -> None:
                np.testing.assert_allclose(np.asarray(ours, dtype=float), theirs[key],
                                           rtol=rtol, atol=atol, err_msg=f"{where} {key}")

            close([e.value for e in mine], "value", atol=1e-6)
            close([e.sampling_error for e in mine], "sampling_error", rtol=1e-9)
            close([e.upper for e in mine], "upper_confidence_boundary", atol=1e-6)
            close([e.lower for e in mine], "lower_confidence_boundary", atol=1e-6)
            close([e.upper_threshold for e in mine], "upper_threshold", atol=1e-12)
            close([e.lower_threshold for e in mine], "lower_threshold", atol=1e-12)
            close([r[metric] for r in realised], "realized", atol=1e-12)
            assert [e.alert for e in mine] == theirs["alert"], where
