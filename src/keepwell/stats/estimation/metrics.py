"""The metrics CBPE estimates: expected values, realised values and NannyML's sampling errors.

Every function works on one layout for both problems. ``probabilities`` and ``scores`` are
``(n, k)`` arrays with one column per class (a binary problem is ``[1 - p, p]``), ``predicted``
and ``truth`` hold class indices, and ``columns`` says which classes a metric averages over:
the positive class alone for a binary problem (``(1,)``), every class for a multiclass one
(NannyML's macro averaging, one class against the rest).

Expected confusion counts of class ``c`` in a chunk, from calibrated probabilities ``P``
(Guillory et al. 2021; NannyML's CBPE): ``TP_c = Σ_{ŷ=c} P_c``, ``FP_c = #{ŷ=c} - TP_c``,
``FN_c = Σ P_c - TP_c``; accuracy is ``Σ_c TP_c / n``. The expected ROC AUC of class ``c``
traces the expected ROC curve: rows sorted by decreasing raw score, ``TPR(t) = Σ_{i≤t} P_ic /
Σ P_c`` and ``FPR(t) = Σ_{i≤t} (1 - P_ic) / Σ (1 - P_c)``, integrated by the trapezoid rule.

Sampling errors follow ``nannyml/sampling_error/{binary,multiclass}_classification.py``: from
the reference, a per-class variance ``σ²_c`` of an observation-level version of the metric and
the fraction ``f_c`` of rows it is measured on; for a chunk of ``n`` rows
``SE = factor · sqrt(Σ_c σ²_c / f_c) / (|columns| · sqrt(n))`` (factor 1.2 for multiclass ROC
AUC, NannyML's empirical correction; 1 otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["METRICS", "Metric", "SamplingError", "class_aucs", "estimated", "expected_roc_auc",
           "realized", "roc_auc", "sampling_errors"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

Metric = Literal["roc_auc", "f1", "accuracy", "precision", "recall"]
METRICS: tuple[Metric, ...] = ("roc_auc", "f1", "accuracy", "precision", "recall")


def _ratio(numerator: FloatArray, denominator: FloatArray, empty: float) -> FloatArray:
    """``numerator / denominator``, with ``empty`` where the denominator is 0."""
    out = np.full(numerator.shape, empty, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def roc_auc(scores: FloatArray, positive: BoolArray, order: IntArray | None = None) -> float:
    """ROC AUC as the Mann–Whitney statistic, tied scores counting one half; NaN with one class.

    ``order`` is ``np.argsort(scores)`` when already known.

    Examples
    --------
    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    n = positive.size
    n_pos = int(np.count_nonzero(positive))
    if n_pos == 0 or n_pos == n:
        return math.nan
    if order is None:
        order = np.argsort(scores)
    ordered = scores[order]
    hits = positive[order]
    distinct = ordered[1:] != ordered[:-1]
    if distinct.all():  # no ties: the ranks are the positions
        rank_sum = float(np.flatnonzero(hits).sum()) + n_pos
    else:
        starts = np.concatenate(([0], np.flatnonzero(distinct) + 1))
        ends = np.append(starts[1:], n)
        positives = np.add.reduceat(hits.astype(np.float64), starts)
        rank_sum = float(positives @ ((starts + ends + 1) / 2.0))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * (n - n_pos))


def class_aucs(truth: IntArray, scores: FloatArray, columns: tuple[int, ...],
               orders: Sequence[IntArray] | None = None) -> list[float]:
    """The ROC AUC of each class in ``columns``, one against the rest (``orders``: each
    column's ``argsort`` when already known)."""
    return [roc_auc(np.ascontiguousarray(scores[:, c]), truth == c,
                    None if orders is None else orders[i]) for i, c in enumerate(columns)]


def expected_roc_auc(probabilities: FloatArray, scores: FloatArray) -> float:
    """The ROC AUC expected from calibrated ``probabilities``, rows ranked by raw ``scores``.

    Examples
    --------
    >>> round(expected_roc_auc(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0.2, 0.4, 0.6, 0.8])), 4)
    0.825
    """
    order = np.argsort(scores)[::-1]
    tps = np.cumsum(probabilities[order])
    fps = np.arange(1, tps.size + 1) - tps
    if tps[-1] <= 0 or fps[-1] <= 0:
        return math.nan
    tpr = np.concatenate(([0.0], tps / tps[-1]))
    fpr = np.concatenate(([0.0], fps / fps[-1]))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def _per_class(metric: Metric, tp: FloatArray, fp: FloatArray, fn: FloatArray) -> float:
    """Precision, recall or F1 from confusion counts per class, macro-averaged; a class with
    an empty denominator scores 0."""
    if metric == "precision":
        return float(_ratio(tp, tp + fp, 0.0).mean())
    if metric == "recall":
        return float(_ratio(tp, tp + fn, 0.0).mean())
    return float(_ratio(tp, tp + 0.5 * (fp + fn), 0.0).mean())


def estimated(metrics: Sequence[Metric], probabilities: FloatArray, scores: FloatArray,
              predicted: IntArray, columns: tuple[int, ...]) -> dict[str, float]:
    """The value of each metric expected on a chunk, from its calibrated probabilities."""
    n, k = probabilities.shape
    cols = list(columns)
    tp_all: FloatArray = np.bincount(predicted, weights=probabilities[np.arange(n), predicted],
                                     minlength=k).astype(np.float64)
    tp = tp_all[cols]
    fp = np.bincount(predicted, minlength=k)[cols] - tp
    fn = probabilities[:, cols].sum(axis=0) - tp
    out: dict[str, float] = {}
    for metric in metrics:
        if metric == "roc_auc":
            out[metric] = float(np.mean([
                expected_roc_auc(np.ascontiguousarray(probabilities[:, c]),
                                 np.ascontiguousarray(scores[:, c])) for c in columns]))
        elif metric == "accuracy":
            out[metric] = float(tp_all.sum() / n)
        else:
            out[metric] = _per_class(metric, tp, fp, fn)
    return out


def _counts(truth: IntArray, predicted: IntArray, k: int
            ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """True positives, predicted and actual counts per class."""
    tp = np.bincount(truth[truth == predicted], minlength=k).astype(np.float64)
    return (tp, np.bincount(predicted, minlength=k).astype(np.float64),
            np.bincount(truth, minlength=k).astype(np.float64))


def realized(metrics: Sequence[Metric], truth: IntArray, predicted: IntArray,
             scores: FloatArray, columns: tuple[int, ...], *,
             aucs: Sequence[float] | None = None) -> dict[str, float]:
    """The value of each metric on labelled rows, NaN where NannyML gives NaN.

    That is: ROC AUC when a class of ``columns`` is absent from ``truth``; the other metrics
    (and multiclass accuracy) when ``truth`` or ``predicted`` holds a single class. A class
    never predicted (or never true) scores 0 in a macro average, as scikit-learn's
    ``zero_division`` default does. ``aucs`` are the classes' ROC AUCs when already known.
    """
    k = scores.shape[1]
    binary = columns == (1,)
    single = (truth.size == 0 or truth.min() == truth.max()
              or predicted.min() == predicted.max())
    tp, n_predicted, n_true = (a[list(columns)] for a in _counts(truth, predicted, k))
    out: dict[str, float] = {}
    for metric in metrics:
        if metric == "roc_auc":
            found = class_aucs(truth, scores, columns) if aucs is None else aucs
            out[metric] = float(np.mean(found))
        elif metric == "accuracy":
            out[metric] = (math.nan if single and not binary
                           else float(np.mean(truth == predicted)))
        else:
            out[metric] = (math.nan if single
                           else _per_class(metric, tp, n_predicted - tp, n_true - tp))
    return out


@dataclass(frozen=True)
class SamplingError:
    """NannyML's sampling-error components of one metric, fitted on the reference.

    ``variance[i]`` and ``fraction[i]`` belong to the ``i``-th averaged class; ``factor``
    scales the result. :meth:`at` gives the standard error on a chunk of ``n`` rows.

    Examples
    --------
    >>> round(SamplingError((0.25,), (1.0,)).at(100), 4)   # accuracy 0.5: sqrt(.25 / 100)
    0.05
    """

    variance: tuple[float, ...]
    fraction: tuple[float, ...]
    factor: float = 1.0

    def at(self, n: int) -> float:
        terms = [v / f if f > 0 else math.nan for v, f in zip(self.variance, self.fraction,
                                                               strict=True)]
        return self.factor * math.sqrt(math.fsum(terms)) / (len(terms) * math.sqrt(n))


def _auroc_component(scores: FloatArray, positive: BoolArray,
                     order: IntArray | None = None) -> tuple[float, float]:
    """Variance of the per-positive Mann–Whitney shares, and the positives' share (minority
    class taken as positive), as NannyML computes them (its rank quirks included).

    Tied scores are ranked in the order ``np.argsort`` puts them, as NannyML's are; ``order``
    (``np.argsort(scores)``) is used instead only where no two scores tie.
    """
    n = positive.size
    truth = positive.astype(np.intp)
    flip = bool(truth.mean() > 0.5)
    if flip:
        truth = 1 - truth
        scores = 1 - scores
    if order is not None and flip:
        order = order[::-1]
    if order is not None and np.count_nonzero(np.diff(scores[order])) == n - 1:
        ranked = order  # no ties: every sort gives this order
    else:
        ranked = np.argsort(scores)
    ranks = np.flatnonzero(truth[ranked])
    ranks = ranks[ranks > 0]
    n_pos = int(truth.sum())
    if n_pos == 0 or n_pos == n:
        return math.nan, n_pos / n
    shares = (ranks - np.arange(ranks.size)) / (n - n_pos)
    return float(np.var(shares)), n_pos / n


def sampling_errors(metrics: Sequence[Metric], truth: IntArray, predicted: IntArray,
                    scores: FloatArray, columns: tuple[int, ...],
                    orders: Sequence[IntArray] | None = None) -> dict[str, SamplingError]:
    """Fit the sampling-error components of each metric on labelled reference rows
    (``orders``: each column's ``argsort`` when already known)."""
    n, k = scores.shape
    binary = columns == (1,)
    tp, n_predicted, n_true = (a[list(columns)] for a in _counts(truth, predicted, k))
    fp, fn = n_predicted - tp, n_true - tp
    out: dict[str, SamplingError] = {}
    for metric in metrics:
        if metric == "accuracy":
            right = float(np.mean(truth == predicted))
            out[metric] = SamplingError((right * (1 - right),), (1.0,))
            continue
        if metric == "roc_auc":
            parts = [_auroc_component(np.ascontiguousarray(scores[:, c]), truth == c,
                                      None if orders is None else orders[i])
                     for i, c in enumerate(columns)]
            out[metric] = SamplingError(tuple(v for v, _ in parts), tuple(f for _, f in parts),
                                        1.0 if binary else 1.2)
            continue
        relevant = {"precision": n_predicted, "recall": n_true}.get(metric, tp + fp + fn)
        q = _ratio(tp, relevant, math.nan)
        fraction: FloatArray = relevant / n
        variance: FloatArray = q * (1 - q)
        if metric == "f1" and binary:  # NannyML scales them by |relevant| / (TP + (FP + FN) / 2)
            variance = variance * _ratio(relevant, tp + 0.5 * (fp + fn), math.nan) ** 2
        out[metric] = SamplingError(tuple(variance.tolist()), tuple(fraction.tolist()))
    return out
