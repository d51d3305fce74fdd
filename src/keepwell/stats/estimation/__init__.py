"""Performance without labels: estimate a classifier's metrics from its scores alone.

:class:`CBPE` (Confidence-Based Performance Estimation, NannyML's method) is fitted on the
reference (a version's holdout: labels and scores) and estimates accuracy, precision, recall,
F1 and ROC AUC on chunks of production scores, binary or multiclass, each with a sampling
error, a confidence band and alert thresholds. Its fitted state is plain JSON
(:meth:`CBPE.to_dict` / :meth:`CBPE.from_dict`), so the monitor can store it.

>>> import numpy as np
>>> from keepwell.stats.estimation import CBPE
>>> rng = np.random.default_rng(0)
>>> scores = rng.random(10_000)                               # the holdout's scores
>>> labels = (rng.random(10_000) < scores).astype(int)        # and its labels
>>> cbpe = CBPE(metrics=("accuracy", "roc_auc")).fit(labels, scores)
>>> result = cbpe.estimate(rng.random(2_000) ** 2)            # production: no labels yet
>>> round(result["accuracy"].value, 3), result.alerts
(0.805, ('accuracy',))
"""

from __future__ import annotations

from keepwell.stats.estimation.calibration import IsotonicCalibrator, needs_calibration
from keepwell.stats.estimation.cbpe import CBPE, Calibration
from keepwell.stats.estimation.metrics import METRICS, Metric, SamplingError
from keepwell.stats.estimation.result import EstimateResult, MetricEstimate, Problem

__all__ = [
    "CBPE",
    "METRICS",
    "Calibration",
    "EstimateResult",
    "IsotonicCalibrator",
    "Metric",
    "MetricEstimate",
    "Problem",
    "SamplingError",
    "needs_calibration",
]
