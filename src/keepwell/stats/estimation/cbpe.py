"""Confidence-Based Performance Estimation: a classifier's performance without labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.estimation._inputs import (
    class_indices,
    label_array,
    predicted_classes,
    scores_matrix,
)
from keepwell.stats.estimation.calibration import IsotonicCalibrator, fit_calibrator
from keepwell.stats.estimation.metrics import (
    METRICS,
    FloatArray,
    Metric,
    SamplingError,
    class_aucs,
    estimated,
    realized,
    sampling_errors,
)
from keepwell.stats.estimation.result import EstimateResult, MetricEstimate, Problem, json_float

__all__ = ["CBPE", "Calibration"]

Calibration = Literal["isotonic", "none"]
#: Half-width of the confidence band, and of the alert thresholds, in standard deviations.
BAND = 3.0
_FORMAT = "keepwell.cbpe/1"


class CBPE:
    """Estimate a classifier's accuracy, F1, precision, recall and ROC AUC from its scores alone.

    Fitted on the reference (the version's holdout: labels and scores), CBPE calibrates the
    scores into probabilities that the label is each class, and then, on a chunk of production
    scores without labels, reports the *expected* value of each metric: an expected confusion
    matrix ``TP = Σ_{ŷ=1} p``, ``FP = Σ_{ŷ=1} (1 - p)``, ``FN = Σ_{ŷ=0} p``, ``TN = Σ_{ŷ=0}
    (1 - p)`` for accuracy, precision, recall and F1, and the expected ROC curve for ROC AUC
    (:mod:`keepwell.stats.estimation.metrics`). Multiclass metrics are macro averages over the
    classes, one against the rest; accuracy is the mean probability of the predicted class.
    The estimate holds while the relation between inputs and label stays as on the reference
    (covariate shift, not concept shift).

    This is NannyML 0.13.1's CBPE (``nannyml/performance_estimation/confidence_based``), and
    gives its numbers: the same decision whether to calibrate
    (:func:`~keepwell.stats.estimation.calibration.needs_calibration`, per class for multiclass,
    after which multiclass probabilities are renormalised to sum to 1), the same sampling
    errors (scaled from the reference by ``1/sqrt(n)``), the band ``value ∓ 3 SE`` and alert
    thresholds ``mean ∓ 3 std`` of the metric realised on the reference's chunks, clipped to
    [0, 1].

    Source: NannyML documentation, "Estimation of Performance of the Monitored Model:
    Confidence-based Performance Estimation (CBPE)", and its source above; calibrated
    confidence read as expected accuracy is also the premise of Guillory, D. et al. (2021),
    "Predicting with confidence on unseen distributions", ICCV.

    Parameters
    ----------
    metrics : sequence of {"roc_auc", "f1", "accuracy", "precision", "recall"}
        What to estimate, in this order.
    calibration : {"isotonic", "none"}, default "isotonic"
        ``"isotonic"`` calibrates each class's scores where that lowers the held-out
        calibration error on the reference (NannyML's rule); ``"none"`` takes the scores as
        probabilities.
    chunk_size : int or None, default None
        Rows per reference chunk for the alert thresholds; ``None`` makes ten chunks
        (NannyML's default chunker), the last one taking the remainder.

    Attributes
    ----------
    problem_ : {"binary", "multiclass"}
    classes_ : tuple
        Class labels; for a binary problem ``(negative, positive)``.
    metrics_ : tuple of str
        The metrics estimated, checked.
    calibrators_ : tuple of IsotonicCalibrator or None
        Per calibrated column (the positive class alone for a binary problem); ``None`` where
        the scores are used as they are. ``calibrated_`` says which are calibrated.
    sampling_errors_, reference_, thresholds_ : dict keyed by metric
        Sampling-error components, the metric realised on the whole reference, and the alert
        thresholds ``(lower, upper)``.
    n_reference_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def scored(n, shift):                                 # an under-confident model
    ...     x = rng.normal(shift, 1, n)
    ...     y = rng.random(n) < 1 / (1 + np.exp(-2 * x))
    ...     return y.astype(int), 1 / (1 + np.exp(-x))
    >>> y_ref, s_ref = scored(20_000, 0.0)
    >>> cbpe = CBPE().fit(y_ref, s_ref)
    >>> cbpe.calibrated_
    (True,)
    >>> y_new, s_new = scored(5_000, 1.0)                    # the population moved
    >>> accuracy = cbpe.estimate(s_new)["accuracy"]
    >>> round(accuracy.value, 3), round(accuracy.lower, 3), round(accuracy.upper, 3)
    (0.843, 0.825, 0.861)
    >>> round(accuracy.reference, 3), accuracy.alert
    (0.778, True)
    >>> round(cbpe.realized(y_new, s_new)["accuracy"], 3)    # once the labels arrive
    0.838
    """

    problem_: Problem
    classes_: tuple[Any, ...]
    calibrators_: tuple[IsotonicCalibrator | None, ...]
    metrics_: tuple[Metric, ...]
    sampling_errors_: dict[str, SamplingError]
    reference_: dict[str, float]
    thresholds_: dict[str, tuple[float | None, float | None]]
    n_reference_: int

    def __init__(self, metrics: Sequence[Metric] = METRICS, calibration: Calibration = "isotonic",
                 chunk_size: int | None = None) -> None:
        self.metrics = metrics
        self.calibration = calibration
        self.chunk_size = chunk_size

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, y_true: Any, scores: Any, *, y_pred: Any = None,
            classes: Sequence[Any] | None = None) -> CBPE:
        """Fit on the reference: labels ``y_true`` and the model's ``scores`` for the same rows.

        ``scores`` is the positive class's probability for a binary model (1-d), or an
        ``(n, k)`` array or frame of class probabilities for a multiclass one, in the order of
        ``classes`` (default: the sorted labels of ``y_true``; for a binary model ``(0, 1)``, or
        ``(negative, positive)``). ``y_pred`` is the predicted label (default: score > 0.5 for
        a binary model, the most probable class otherwise).

        Raises
        ------
        ValidationError
            Empty, non-finite or out-of-range scores; labels missing or not in ``classes``; a
            class absent from the reference; an unknown metric, calibration or chunk size.
        """
        metrics = self._checked_parameters()
        matrix, binary = scores_matrix(scores, "scores")
        n, k = matrix.shape
        labels = label_array(y_true, "y_true", n)
        if binary:
            chosen: tuple[Any, ...] = (0, 1) if classes is None else tuple(classes)
            if len(chosen) != 2:
                raise ValidationError(f"classes has {len(chosen)} labels but binary scores (one "
                                      "column) need two: pass classes=(negative, positive)")
        elif classes is None:
            try:
                chosen = tuple(np.unique(labels).tolist())
            except TypeError:
                raise ValidationError("y_true mixes labels that cannot be sorted: pass classes= "
                                      "in the columns' order") from None
            if len(chosen) != k:
                raise ValidationError(f"y_true holds {len(chosen)} classes but scores has {k} "
                                      "columns: pass classes= in the columns' order")
        else:
            chosen = tuple(classes)
            if len(chosen) != k:
                raise ValidationError(f"classes has {len(chosen)} labels but scores has {k} "
                                      "columns: give one label per column")
        if len(set(chosen)) != len(chosen):
            raise ValidationError("classes holds a label twice: give each class once")
        truth = class_indices(labels, chosen, "y_true")
        absent = np.flatnonzero(np.bincount(truth, minlength=k) == 0)
        if absent.size:
            missing = json_value(chosen[absent[0]])
            raise ValidationError(f"y_true never holds the class {missing!r}: the reference "
                                  "needs labelled rows of every class")
        predicted = predicted_classes(y_pred, matrix, chosen, binary)
        columns = _columns(binary, k)
        orders = [np.argsort(matrix[:, c]) for c in columns]  # one sort per class serves all
        aucs = class_aucs(truth, matrix, columns, orders)
        calibrators = tuple(
            fit_calibrator((truth == c).astype(np.intp), np.ascontiguousarray(matrix[:, c]),
                           auc=auc, order=order) if self.calibration == "isotonic" else None
            for c, auc, order in zip(columns, aucs, orders, strict=True))
        size = self.chunk_size or max(1, n // 10)
        per_chunk = [realized(metrics, truth[a:a + size], predicted[a:a + size],
                              matrix[a:a + size], columns) for a in range(0, n, size)]
        self.problem_ = "binary" if binary else "multiclass"
        self.classes_ = chosen
        self.metrics_ = metrics
        self.calibrators_ = calibrators
        self.thresholds_ = {m: _thresholds([values[m] for values in per_chunk])
                            for m in metrics}
        self.reference_ = realized(metrics, truth, predicted, matrix, columns, aucs=aucs)
        self.n_reference_ = n
        self.sampling_errors_ = sampling_errors(metrics, truth, predicted, matrix, columns,
                                                orders)
        return self

    def _checked_parameters(self) -> tuple[Metric, ...]:
        given: Sequence[Any] = self.metrics
        metrics: tuple[Any, ...] = (given,) if isinstance(given, str) else tuple(given)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            problem = f"holds {unknown[0]!r}" if unknown else "is empty"
            raise ValidationError(f"metrics {problem}: choose from {', '.join(METRICS)}")
        if len(set(metrics)) != len(metrics):
            raise ValidationError("metrics names a metric twice: name each once")
        if self.calibration not in ("isotonic", "none"):
            raise ValidationError(f"calibration must be 'isotonic' or 'none', not "
                                  f"{self.calibration!r}")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool)
                                            or not isinstance(self.chunk_size, int)
                                            or self.chunk_size < 1):
            raise ValidationError(f"chunk_size must be a positive integer or None, not "
                                  f"{self.chunk_size!r}")
        return metrics

    # -- estimating ---------------------------------------------------------------------------

    def estimate(self, scores: Any, y_pred: Any = None) -> EstimateResult:
        """Estimate every metric on one chunk of production ``scores`` (no labels needed).

        ``scores`` and ``y_pred`` are as in :meth:`fit`. The confidence band and the sampling
        error are for a chunk of this many rows.

        Raises
        ------
        ValidationError
            Not fitted; empty, non-finite or out-of-range scores, or the wrong number of
            columns; predicted labels not in ``classes_``.
        """
        matrix = self._fitted_scores(scores)
        n = matrix.shape[0]
        binary = self.problem_ == "binary"
        predicted = predicted_classes(y_pred, matrix, self.classes_, binary)
        probabilities = self._probabilities(matrix)
        columns = _columns(binary, len(self.classes_))
        values = estimated(self.metrics_, probabilities, matrix, predicted, columns)
        estimates = []
        for metric in self.metrics_:
            value = values[metric]
            error = self.sampling_errors_[metric].at(n)
            lower, upper = self.thresholds_[metric]
            alert = ((lower is not None and value < lower)
                     or (upper is not None and value > upper))
            estimates.append(MetricEstimate(
                metric=metric, value=value, sampling_error=error,
                lower=float(np.maximum(0.0, value - BAND * error)),  # NaN stays NaN
                upper=float(np.minimum(1.0, value + BAND * error)),
                reference=self.reference_[metric], lower_threshold=lower,
                upper_threshold=upper, alert=bool(alert)))
        return EstimateResult(self.problem_, n, tuple(estimates))

    def realized(self, y_true: Any, scores: Any, y_pred: Any = None) -> dict[str, float]:
        """The metrics realised on labelled rows, on the conventions of the estimates (NaN where
        a metric is not defined, as :func:`~keepwell.stats.estimation.metrics.realized` says)."""
        matrix = self._fitted_scores(scores)
        given = label_array(y_true, "y_true", matrix.shape[0])
        truth = class_indices(given, self.classes_, "y_true")
        binary = self.problem_ == "binary"
        predicted = predicted_classes(y_pred, matrix, self.classes_, binary)
        columns = _columns(binary, len(self.classes_))
        return realized(self.metrics_, truth, predicted, matrix, columns)

    @property
    def calibrated_(self) -> tuple[bool, ...]:
        """Whether each calibrated column's scores are calibrated (NannyML's decision)."""
        self._check_fitted()
        return tuple(c is not None for c in self.calibrators_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "sampling_errors_"):
            raise ValidationError("this CBPE is not fitted: call fit(y_true, scores) on the "
                                  "reference first, or load a fitted one with from_dict")

    def _fitted_scores(self, scores: Any) -> FloatArray:
        self._check_fitted()
        matrix, binary = scores_matrix(scores, "scores")
        if binary != (self.problem_ == "binary"):
            want = ("one column: the positive class's score" if self.problem_ == "binary"
                    else f"{len(self.classes_)} columns, one per class")
            raise ValidationError(f"scores has the wrong shape {np.shape(scores)}: the "
                                  f"{self.problem_} model was fitted with {want}")
        if not binary and matrix.shape[1] != len(self.classes_):
            raise ValidationError(f"scores has {matrix.shape[1]} columns but the model has "
                                  f"{len(self.classes_)} classes {list(self.classes_)}")
        return matrix

    def _probabilities(self, matrix: FloatArray) -> FloatArray:
        if self.problem_ == "binary":
            calibrator = self.calibrators_[0]
            if calibrator is None:
                return matrix
            p = calibrator(matrix[:, 1])
            return np.column_stack((1.0 - p, p))
        calibrated = np.column_stack([matrix[:, c] if calibrator is None
                                      else calibrator(matrix[:, c])
                                      for c, calibrator in enumerate(self.calibrators_)])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / calibrated.shape[1])
        normalised: FloatArray = np.divide(calibrated, total, out=uniform, where=total != 0)
        return normalised

    # -- storing ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The parameters and fitted state as JSON-safe data (no pickle); see :meth:`from_dict`.
        """
        self._check_fitted()
        return {
            "format": _FORMAT,
            "metrics": list(self.metrics_),
            "calibration": self.calibration,
            "chunk_size": self.chunk_size,
            "problem": self.problem_,
            "classes": [json_value(c) for c in self.classes_],
            "n_reference": self.n_reference_,
            "calibrators": [None if c is None else c.to_dict() for c in self.calibrators_],
            "sampling_errors": {m: {"variance": [json_float(v) for v in e.variance],
                                    "fraction": [json_float(f) for f in e.fraction],
                                    "factor": e.factor}
                                for m, e in self.sampling_errors_.items()},
            "reference": {m: json_float(v) for m, v in self.reference_.items()},
            "thresholds": {m: list(t) for m, t in self.thresholds_.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CBPE:
        """A fitted CBPE from :meth:`to_dict`'s output; it estimates exactly as the original.

        Raises
        ------
        ValidationError
            ``data`` is not a stored CBPE.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValidationError(f"data is not a stored CBPE (expected format {_FORMAT!r})")

        def number(value: float | None) -> float:
            return math.nan if value is None else float(value)

        try:
            cbpe = cls(tuple(data["metrics"]), data["calibration"], data["chunk_size"])
            cbpe.metrics_ = cbpe._checked_parameters()
            cbpe.problem_ = data["problem"]
            cbpe.classes_ = tuple(data["classes"])
            cbpe.n_reference_ = int(data["n_reference"])
            cbpe.calibrators_ = tuple(None if c is None else IsotonicCalibrator.from_dict(c)
                                      for c in data["calibrators"])
            cbpe.sampling_errors_ = {
                m: SamplingError(tuple(number(v) for v in e["variance"]),
                                 tuple(number(f) for f in e["fraction"]), float(e["factor"]))
                for m, e in data["sampling_errors"].items()}
            cbpe.reference_ = {m: number(v) for m, v in data["reference"].items()}
            cbpe.thresholds_ = {m: (lo, hi) for m, (lo, hi) in data["thresholds"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"data is not a complete stored CBPE: {exc!r}") from None
        return cbpe


def _columns(binary: bool, k: int) -> tuple[int, ...]:
    """The classes a metric averages over: the positive one (binary), or all of them."""
    return (1,) if binary else tuple(range(k))


def _thresholds(values: list[float]) -> tuple[float | None, float | None]:
    """``mean ∓ 3 std`` of the finite chunk values, clipped to [0, 1] (NannyML's
    ``StandardDeviationThreshold`` with the metric's limits)."""
    finite = np.asarray([v for v in values if not math.isnan(v)])
    if finite.size == 0:
        return None, None
    mean, std = float(finite.mean()), float(finite.std())
    lower, upper = mean - BAND * std, mean + BAND * std
    return (0.0 if lower <= 0 else lower), (1.0 if upper >= 1 else upper)
