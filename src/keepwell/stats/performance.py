"""Model performance from labels: one sample (a window's labelled rows) in, metrics out.

The monitor joins a window's predictions with the labels that have arrived and calls
:func:`classification_performance` or :func:`regression_performance` once per window; the
result's :meth:`PerformanceResult.delta` compares it with the version's holdout metrics
(``ΔM = current − holdout``). Metric names are the registry's
(:func:`keepwell.registry.evaluation.holdout_metrics`, scikit-learn's scorer names):

============== ==========================================================================
task           metrics
============== ==========================================================================
binary         ``accuracy precision recall f1 roc_auc log_loss brier calibration_error``
multiclass     ``accuracy precision_macro recall_macro f1_macro roc_auc_ovr log_loss
               calibration_error``
regression     ``mae rmse mape r2``
============== ==========================================================================

A metric the window cannot define is NaN and ``notes[name]`` says why (a window holding one
class has no ROC AUC; without scores there is no log loss); it is never an error, since such
windows are normal in production. Bad input is: empty, mismatched lengths, missing labels,
labels outside ``classes``, scores outside [0, 1].

Every metric is scikit-learn's (checked to 1e-9 in ``tests/stats/test_performance.py``) with
one convention: precision, recall and F1 of a class the window cannot define them for (no row
predicted, labelled, or either) are undefined, not 0 — ``zero_division=np.nan``, which leaves
such classes out of macro averages. The holdout F1 is the same number (its denominator is
never 0 there); a holdout precision or recall of 0 for lack of positives becomes NaN here.

Computed with numpy alone: labels are hashed once (``pandas.factorize``), the confusion matrix
is one ``bincount``, ROC AUC two sorts and binary searches (about 0.1 s of CPU for a million
binary rows, 0.25 s for a million rows of five classes; scikit-learn takes 8 times longer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value
from keepwell.errors import ValidationError

__all__ = ["PerformanceResult", "calibration_error", "classification_performance",
           "regression_performance", "roc_auc"]

PerformanceTask = Literal["binary", "multiclass", "regression"]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

CALIBRATION_BINS = 10
ROW_SUM_TOLERANCE = 1e-4  # multiclass score rows must sum to 1 within this
_NO_SCORES = "no scores were given (the model has no predict_proba, or they were not logged)"
_EPS = float(np.finfo(np.float64).eps)  # log loss clips probabilities to [eps, 1 - eps]


@dataclass(frozen=True)
class PerformanceResult:
    """A model's performance on one sample of labelled predictions.

    ``metrics`` maps each metric's name to a float (NaN when the sample cannot define it);
    ``notes`` says why for every NaN metric, and qualifies some others (a macro average over
    fewer than all classes). ``excluded`` counts rows a metric left out (``mape``: rows whose
    target is 0). ``classes`` is the class order scores were read in; ``positive`` the class
    binary precision, recall, ROC AUC, log loss and calibration are about.
    """

    task: PerformanceTask
    n: int
    metrics: Mapping[str, float]
    notes: Mapping[str, str] = field(default_factory=dict)
    excluded: Mapping[str, int] = field(default_factory=dict)
    classes: tuple[Any, ...] = ()
    positive: Any = None

    def delta(self, holdout: Mapping[str, float | None]) -> dict[str, float]:
        """``ΔM = current − holdout`` for each metric in both (NaN when either is missing).

        Examples
        --------
        >>> r = regression_performance([1.0, 2.0, 4.0], [1.0, 2.5, 3.0])
        >>> {name: round(d, 4) for name, d in r.delta({"mae": 0.25, "r2": 0.9}).items()}
        {'mae': 0.25, 'r2': -0.1679}
        """
        deltas = {}
        for name, value in self.metrics.items():
            if name in holdout:
                reference = holdout[name]
                deltas[name] = value - (math.nan if reference is None else float(reference))
        return deltas

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: NaN metrics become ``None``, classes plain values."""
        return {"task": self.task, "n": self.n,
                "metrics": {k: v if math.isfinite(v) else None for k, v in self.metrics.items()},
                "notes": dict(self.notes), "excluded": dict(self.excluded),
                "classes": [json_value(c) for c in self.classes],
                "positive": json_value(self.positive)}


def classification_performance(
    y_true: Any, y_pred: Any, scores: Any = None, *,
    classes: Iterable[Any] | None = None, positive: Any = None,
) -> PerformanceResult:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and calibration of a classifier.

    Binary (two classes): precision, recall and F1 of the ``positive`` class; ROC AUC, log
    loss, Brier score and calibration error from its probability ``p``. Multiclass: macro
    averages of per-class precision, recall and F1 over the classes where each is defined; ROC
    AUC one-vs-rest (class c's score separating rows labelled c from the rest), averaged over
    the classes that some but not all rows are labelled with (scikit-learn's
    ``multi_class="ovr"``, which is NaN as soon as one class is missing from the labels);
    log loss; top-label calibration error. Classes left out of an average are named in
    ``notes``.

    - ROC AUC is the Mann–Whitney probability that a positive outscores a negative, ties
      counting one half: ``Σ_pos (#neg below + ½ #neg equal) / (P · N)`` (Hanley & McNeil
      1982), the area under the ROC curve with ties handled as scikit-learn's trapezoids.
    - Log loss ``= −mean log q_i``, ``q_i`` the probability given to row i's true class
      (``1 − p`` for a binary negative) clipped to ``[eps, 1 − eps]`` (float64 eps), as
      scikit-learn's ``log_loss``. Brier ``= mean (p_i − y_i)²``.
    - Calibration error (ECE, Naeini et al. 2015; Guo et al. 2017) over 10 equal-width bins
      ``[0, .1), …, [.9, 1]`` of a confidence ``c_i`` (row i in bin ``min(⌊10 c_i⌋, 9)``):
      ``ECE = Σ_b (n_b / n) · |ȳ_b − c̄_b|``, ``ȳ_b`` and ``c̄_b`` the mean outcome and mean
      confidence in bin b. Binary: ``c_i = p_i`` and the outcome is "row i is positive".
      Multiclass (top-label): ``c_i = max_k s_ik`` and the outcome is "the class of that
      largest score is the label" (the first such class on ties).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Labels and predicted classes (numbers, strings or booleans; never missing).
    scores : array-like of shape (n,) or (n, k), optional
        Probabilities, columns in ``classes`` order (a DataFrame whose columns are exactly
        ``proba_<class>`` is put in that order by name). Binary: shape (n,) or (n, 1) is
        ``p``, the positive class's probability; of shape (n, 2) its column is taken. Rows
        of an (n, k) array must sum to 1 (within 1e-4).
    classes : array-like, optional
        Every class of the model, in its score-column order (``model.classes_``). Default:
        the sorted labels and predictions seen, which need at least two classes; a window
        may hold one, so the monitor should pass it.
    positive : optional
        The positive class of a binary model. Default ``classes[1]``, scikit-learn's
        ``classes_[1]`` (for sorted classes, the larger: 1, True, "yes" over "no").

    Returns
    -------
    PerformanceResult
        ``task`` ``"binary"`` for two classes, else ``"multiclass"``.

    Raises
    ------
    ValidationError
        Empty input; lengths that differ; a missing (NaN, None) label or prediction; one not
        among ``classes`` (as the text "1" is not the number 1); fewer than two classes;
        ``positive`` not a class; scores of the wrong shape, not finite, outside [0, 1], or
        rows not summing to 1.

    Examples
    --------
    >>> r = classification_performance([0, 0, 1, 1], [0, 1, 1, 1], [0.1, 0.6, 0.7, 0.9])
    >>> r.task, r.metrics["accuracy"], r.metrics["recall"], r.metrics["roc_auc"]
    ('binary', 0.75, 1.0, 1.0)
    >>> r = classification_performance(["no", "no"], ["no", "yes"], [0.2, 0.7],
    ...                                classes=["no", "yes"])
    >>> r.metrics["roc_auc"], r.notes["roc_auc"]
    (nan, "undefined with one class labelled: every label is 'no'")
    """
    (t_codes, t_uniques), (p_codes, p_uniques) = (_factorize(y_true, "y_true"),
                                                  _factorize(y_pred, "y_pred"))
    n = t_codes.size
    if p_codes.size != n:
        raise ValidationError(f"y_pred has {p_codes.size} values but y_true has {n}; pass one "
                              "prediction per label.")
    order = _classes(classes, t_uniques + p_uniques)
    k = len(order)
    index = {c: i for i, c in enumerate(order)}
    truth, pred = _encode(t_codes, t_uniques, index, "y_true"), _encode(p_codes, p_uniques,
                                                                        index, "y_pred")
    if k > 2 and positive is not None:
        raise ValidationError(f"positive applies to binary models; these have {k} classes.")
    if positive is None and k == 2:
        positive = order[1]
    if k == 2 and positive not in index:
        raise ValidationError(f"positive {positive!r} is not one of the classes {order}.")
    if k == 2:
        positive = order[index[positive]]
    confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion).astype(np.float64)
    labelled, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    metrics: dict[str, float] = {"accuracy": float(hits.sum() / n)}
    notes: dict[str, str] = {}
    per_class = {"precision": _ratio(hits, predicted), "recall": _ratio(hits, labelled),
                 "f1": _ratio(2 * hits, predicted + labelled)}
    why = {"precision": "never predicted", "recall": "never labelled",
           "f1": "neither labelled nor predicted"}
    prob = None if scores is None else _scores(scores, n, order, index[positive] if k == 2
                                               else None)
    if k == 2:
        j = index[positive]
        for name, values in per_class.items():
            metrics[name] = float(values[j])
            if math.isnan(values[j]):
                notes[name] = f"undefined: the positive class {positive!r} is {why[name]}"
        _binary_scores(metrics, notes, prob, truth == j, order, labelled)
    else:
        for name, values in per_class.items():
            _macro(metrics, notes, f"{name}_macro", values, order, why[name])
        _multiclass_scores(metrics, notes, prob, truth, order)
    return PerformanceResult(task="binary" if k == 2 else "multiclass", n=n, metrics=metrics,
                             notes=notes, classes=tuple(order),
                             positive=positive if k == 2 else None)


def regression_performance(y_true: Any, y_pred: Any) -> PerformanceResult:
    """MAE, RMSE, MAPE and R² of a regressor.

    ``MAE = mean |e_i|``, ``RMSE = √(mean e_i²)``, ``e_i = ŷ_i − y_i``;
    ``MAPE = mean_{y_i ≠ 0} |e_i| / |y_i|`` as a fraction (0.1 is 10 %) over the rows whose
    target is not 0 — those rows are left out and counted in ``excluded["mape"]``
    (scikit-learn instead divides by ``max(|y_i|, eps)``, which makes one zero target dominate
    the mean); ``R² = 1 − Σ e_i² / Σ (y_i − ȳ)²``, NaN when the targets are constant (one
    row, or a window of equal values). Same formulas as scikit-learn's
    ``mean_absolute_error``, ``root_mean_squared_error``, ``mean_absolute_percentage_error``
    and ``r2_score``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Targets and predictions, finite numbers.

    Returns
    -------
    PerformanceResult
        ``task`` ``"regression"``; ``excluded["mape"]`` the rows with target 0.

    Raises
    ------
    ValidationError
        Empty input, lengths that differ, values that are not numbers or not finite.

    Examples
    --------
    >>> r = regression_performance([0.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    >>> r.metrics
    {'mae': 0.6666666666666666, 'rmse': 0.816496580927726, 'mape': 0.125, 'r2': 0.75}
    >>> r.excluded
    {'mape': 1}
    """
    truth = _numbers(y_true, "y_true")
    pred = _numbers(y_pred, "y_pred")
    if pred.size != truth.size:
        raise ValidationError(f"y_pred has {pred.size} values but y_true has {truth.size}; "
                              "pass one prediction per target.")
    n = truth.size
    error = pred - truth
    squared = float(error @ error)
    nonzero = truth != 0
    zeros = n - int(np.count_nonzero(nonzero))
    notes: dict[str, str] = {}
    if zeros == n:
        mape = math.nan
        notes["mape"] = "undefined: every target is 0"
    else:
        mape = float(np.mean(np.abs(error[nonzero]) / np.abs(truth[nonzero])))
        if zeros:
            notes["mape"] = f"{zeros} of {n} rows left out: their target is 0"
    centred = truth - truth.mean()
    spread = float(centred @ centred)
    if spread > 0:
        r2 = 1.0 - squared / spread
    else:
        r2 = math.nan
        notes["r2"] = "undefined: every target is the same"
    metrics = {"mae": float(np.mean(np.abs(error))), "rmse": math.sqrt(squared / n),
               "mape": mape, "r2": r2}
    return PerformanceResult(task="regression", n=n, metrics=metrics, notes=notes,
                             excluded={"mape": zeros})


# -- inputs ---------------------------------------------------------------------------------

def _factorize(values: Any, name: str) -> tuple[IntArray, list[Any]]:
    """Codes into the distinct values (hashed once), refusing missing and nested values."""
    if isinstance(values, list | tuple):
        values = pd.Series(values, dtype=object)
    elif not isinstance(values, pd.Series | pd.Index | pd.Categorical | np.ndarray):
        values = np.asarray(values)
    if np.ndim(values) != 1:
        raise ValidationError(f"{name} must be one-dimensional: one label per row.")
    try:
        codes, uniques = pd.factorize(values)
    except TypeError as exc:
        raise ValidationError(f"{name} must hold labels (numbers, strings or booleans); "
                              f"{exc}") from None
    if codes.size == 0:
        raise ValidationError(f"{name} is empty; there is nothing to measure.")
    missing = int(np.count_nonzero(codes < 0))
    if missing:
        raise ValidationError(f"{name} has {missing} missing values (NaN or None); keep only "
                              "rows with both a label and a prediction.")
    return codes.astype(np.intp, copy=False), [_plain(u) for u in uniques]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(1)`` → ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


def _classes(classes: Iterable[Any] | None, seen: list[Any]) -> list[Any]:
    if classes is None:
        try:
            order = sorted(set(seen))
        except TypeError:
            kinds = sorted({type(v).__name__ for v in seen})
            raise ValidationError(f"labels and predictions mix types ({', '.join(kinds)}); "
                                  "convert them to one type, or pass classes.") from None
        if len(order) < 2:
            raise ValidationError(f"only one class was seen ({order[0]!r}); pass classes "
                                  "(the model's classes_) so the window can be measured.")
        return order
    order = [_plain(c) for c in classes]
    if len(order) < 2 or len(set(order)) != len(order):
        raise ValidationError(f"classes must list two or more distinct classes, not {order}.")
    return order


def _encode(codes: IntArray, uniques: list[Any], index: Mapping[Any, int],
            name: str) -> IntArray:
    """Class indices from factorised codes; a value outside the classes is an error."""
    lookup = np.array([index.get(u, -1) for u in uniques], dtype=np.intp)
    unknown = [u for u, i in zip(uniques, lookup, strict=True) if i < 0]
    if unknown:
        raise ValidationError(f"{name} has values that are not classes: {unknown[:5]!r} "
                              f"(classes: {list(index)[:10]!r}); a label must equal a class, "
                              "of the same type.")
    return lookup[codes]


def _scores(scores: Any, n: int, order: list[Any], positive: int | None) -> FloatArray:
    """The positive class's probabilities (binary) or the (n, k) probability matrix."""
    k = len(order)
    if isinstance(scores, pd.DataFrame):
        wanted = [f"proba_{c}" for c in order]
        if set(map(str, scores.columns)) == set(wanted) and len(scores.columns) == k:
            scores = scores.set_axis(list(map(str, scores.columns)), axis=1)[wanted]
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError("scores must be numbers (probabilities).") from None
    if positive is not None and array.shape == (n, 1):
        array = array.ravel()  # the logbook's one ``score`` column
    shapes = [(n,), (n, 2)] if positive is not None else [(n, k)]
    if array.shape not in shapes:
        raise ValidationError(f"scores has shape {array.shape}; expected "
                              f"{' or '.join(map(str, shapes))} (rows × classes).")
    if not np.isfinite(array).all():
        raise ValidationError("scores has NaN or infinite values; keep only rows with scores.")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValidationError(f"scores must be probabilities in [0, 1]; they range over "
                              f"[{low:g}, {high:g}].")
    if array.ndim == 2:
        worst = float(np.abs(array.sum(axis=1) - 1.0).max())
        if worst > ROW_SUM_TOLERANCE:
            raise ValidationError(f"scores rows must sum to 1 (one probability per class); "
                                  f"one is off by {worst:g}.")
        if positive is not None:
            return np.ascontiguousarray(array[:, positive])
    return array


def _numbers(values: Any, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be numbers.") from None
    if array.ndim != 1:
        raise ValidationError(f"{name} must be one-dimensional: one value per row.")
    if array.size == 0:
        raise ValidationError(f"{name} is empty; there is nothing to measure.")
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValidationError(f"{name} has {bad} missing or infinite values; keep only rows "
                              "with a finite target and prediction.")
    return array


# -- metrics --------------------------------------------------------------------------------

def _ratio(numerator: FloatArray, denominator: IntArray) -> FloatArray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    out = np.full(numerator.shape, math.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _macro(metrics: dict[str, float], notes: dict[str, str], name: str, values: FloatArray,
           order: list[Any], why: str) -> None:
    """The mean of the defined per-class values, with a note naming the classes left out."""
    defined = ~np.isnan(values)
    left_out = [c for c, ok in zip(order, defined, strict=True) if not ok]
    if not defined.any():
        metrics[name] = math.nan
        notes[name] = f"undefined for every class ({why})"
        return
    metrics[name] = float(values[defined].mean())
    if left_out:
        notes[name] = f"undefined for {left_out[:10]!r} ({why}): averaged over the others"


def roc_auc(score: FloatArray, positive: BoolArray) -> float:
    """Area under the ROC curve: ``Σ_pos (#neg below + ½ #neg equal) / (P · N)``; NaN if P or N
    is 0. Both sides are sorted, so the counts are binary searches (exact integers).

    Examples
    --------
    >>> roc_auc(np.array([0.1, 0.4, 0.4, 0.8]), np.array([False, True, False, True]))
    0.875
    """
    pos, neg = np.sort(score[positive]), np.sort(score[~positive])
    if pos.size == 0 or neg.size == 0:
        return math.nan
    below = np.searchsorted(neg, pos, side="left")
    # ties: only positives equal to a negative need the second search
    tied = neg[np.minimum(below, neg.size - 1)] == pos
    equal = int(np.searchsorted(neg, pos[tied], side="right").sum() - below[tied].sum())
    return (2 * int(below.sum()) + equal) / (2 * pos.size * neg.size)


def calibration_error(confidence: FloatArray, outcome: BoolArray,
                      bins: int = CALIBRATION_BINS) -> float:
    """``ECE = Σ_b |Σ_{i∈b} (y_i − c_i)| / n = Σ_b (n_b / n) |ȳ_b − c̄_b|``, row i in bin
    ``b = min(⌊bins · c_i⌋, bins − 1)``: equal-width bins ``[b/bins, (b+1)/bins)``, the last
    closed (a confidence of exactly 0.3 falls in ``[0.3, 0.4)``).

    Examples
    --------
    >>> round(calibration_error(np.array([0.05, 0.15, 0.95, 0.95]),
    ...                         np.array([False, True, True, False])), 12)
    0.45
    """
    cell = np.minimum((confidence * bins).astype(np.intp), bins - 1)
    gap = (np.bincount(cell, weights=outcome.astype(np.float64), minlength=bins)
           - np.bincount(cell, weights=confidence, minlength=bins))
    return float(np.abs(gap).sum() / confidence.size)


def _log_loss(probability_of_truth: FloatArray) -> float:
    return float(-np.mean(np.log(np.clip(probability_of_truth, _EPS, 1.0 - _EPS))))


def _binary_scores(metrics: dict[str, float], notes: dict[str, str], p: FloatArray | None,
                   is_positive: BoolArray, order: list[Any], labelled: IntArray) -> None:
    names = ("roc_auc", "log_loss", "brier", "calibration_error")
    if p is None:
        metrics.update(dict.fromkeys(names, math.nan))
        notes.update(dict.fromkeys(names, _NO_SCORES))
        return
    metrics["roc_auc"] = roc_auc(p, is_positive)
    if math.isnan(metrics["roc_auc"]):
        only = order[int(np.argmax(labelled))]
        notes["roc_auc"] = f"undefined with one class labelled: every label is {only!r}"
    metrics["log_loss"] = _log_loss(np.where(is_positive, p, 1.0 - p))
    metrics["brier"] = float(np.mean(np.square(p - is_positive)))
    metrics["calibration_error"] = calibration_error(p, is_positive)


def _multiclass_scores(metrics: dict[str, float], notes: dict[str, str],
                       s: FloatArray | None, truth: IntArray, order: list[Any]) -> None:
    names = ("roc_auc_ovr", "log_loss", "calibration_error")
    if s is None:
        metrics.update(dict.fromkeys(names, math.nan))
        notes.update(dict.fromkeys(names, _NO_SCORES))
        return
    n = truth.size
    per_class = np.array([roc_auc(s[:, c], truth == c) for c in range(len(order))])
    _macro(metrics, notes, "roc_auc_ovr", per_class, order, "labelled in every row or in none")
    metrics["log_loss"] = _log_loss(s[np.arange(n), truth])
    top = s.argmax(axis=1)
    metrics["calibration_error"] = calibration_error(s[np.arange(n), top], top == truth)
