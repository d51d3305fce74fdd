"""Performance metrics against scikit-learn on the same data.

Every metric is compared with scikit-learn's function on seeded random samples (binary and
multiclass, integer, string and boolean labels, scores with many ties and with exact 0 and 1)
to ``rel=1e-9`` (``abs=1e-12`` around 0). Precision and recall use ``zero_division=np.nan``,
keepwell's convention; MAPE is compared on the rows whose target is not 0. The calibration
error has no scikit-learn counterpart: it is checked against the loop below and against
hand-computed cases. The names line up with the registry's holdout metrics: a fitted model's
``holdout_metrics`` and these metrics on the same rows differ by 0.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from keepwell.errors import ValidationError
from keepwell.registry.evaluation import holdout_metrics, model_outputs
from keepwell.stats.performance import (
    PerformanceResult,
    calibration_error,
    classification_performance,
    regression_performance,
    roc_auc,
)


def close(expected: Any) -> Any:
    """Equal to ``expected`` within the stated tolerance: relative 1e-9, absolute 1e-12."""
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def ece_loop(confidence: Any, outcome: Any, bins: int = 10) -> float:
    """Expected calibration error, one row at a time: Σ_b (n_b / n) |mean outcome − mean c|."""
    cells: list[list[float]] = [[0, 0.0, 0.0] for _ in range(bins)]
    for c, hit in zip(confidence, outcome, strict=True):
        cell = cells[min(math.floor(c * bins), bins - 1)]
        cell[0] += 1
        cell[1] += float(hit)
        cell[2] += c
    n = len(confidence)
    return sum(count / n * abs(hits / count - conf / count)
               for count, hits, conf in cells if count)


# -- samples ---------------------------------------------------------------------------------

def binary_sample(seed: int, n: int = 3_000, *, ties: bool = False) -> tuple[Any, ...]:
    """Labels 0/1, a noisy probability of 1, and predictions from it (some flipped)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(np.int64)
    p = np.clip(0.5 + (y - 0.5) * rng.uniform(0.1, 0.8) + rng.normal(0, 0.25, n), 0, 1)
    if ties:  # ten distinct scores, exact 0 and 1 among them (log loss clips them)
        p = np.round(p, 1)
    pred = np.where(rng.random(n) < 0.1, 1 - (p >= 0.5), p >= 0.5).astype(np.int64)
    return y, pred, p


def multiclass_sample(seed: int, k: int, n: int = 3_000, *,
                      ties: bool = False) -> tuple[Any, ...]:
    """Labels 0..k-1, probability rows (a few distinct rows when ``ties``), argmax predictions."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 3.0)))
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    if ties:
        logits = np.round(logits)  # many rows share probabilities, and scores tie
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = scores.argmax(axis=1)
    flip = rng.random(n) < 0.1
    pred[flip] = rng.integers(0, k, int(flip.sum()))
    return y, pred, scores


def sklearn_binary(y: Any, pred: Any, p: Any, positive: Any) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=[positive], average=None, zero_division=np.nan)
    is_positive = np.asarray(y) == positive
    return {"accuracy": accuracy_score(y, pred), "precision": precision[0],
            "recall": recall[0], "f1": f1[0], "roc_auc": roc_auc_score(is_positive, p),
            "log_loss": log_loss(is_positive, p, labels=[False, True]),
            "brier": brier_score_loss(is_positive, p)}


def sklearn_multiclass(y: Any, pred: Any, scores: Any, classes: list[Any], *,
                       auc: bool = True) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=classes, average="macro", zero_division=np.nan)
    expected = {"accuracy": accuracy_score(y, pred), "precision_macro": precision,
                "recall_macro": recall, "f1_macro": f1,
                "log_loss": log_loss(y, scores, labels=classes)}
    if auc:
        expected["roc_auc_ovr"] = roc_auc_score(y, scores, multi_class="ovr",
                                                average="macro", labels=classes)
    return expected


def assert_metrics(result: PerformanceResult, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert result.metrics[name] == close(value), name


# -- binary ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, False), (2, True), (3, True)])
def test_binary_equals_sklearn(seed: int, ties: bool) -> None:
    y, pred, p = binary_sample(seed, ties=ties)
    result = classification_performance(y, pred, p)
    assert (result.task, result.n, result.classes, result.positive) == ("binary", y.size,
                                                                        (0, 1), 1)
    assert_metrics(result, sklearn_binary(y, pred, p, 1))
    assert result.metrics["calibration_error"] == close(ece_loop(p, y == 1))
    assert result.notes == {}
    if ties:
        assert np.isin(p, [0.0, 1.0]).any() and np.unique(p).size <= 11


@pytest.mark.parametrize("seed", [4, 5])
def test_string_labels_and_a_chosen_positive_class(seed: int) -> None:
    y, pred, p = binary_sample(seed, ties=seed == 5)
    names = np.array(["ham", "spam"], dtype=object)
    result = classification_performance(names[y], names[pred], p)
    assert result.classes == ("ham", "spam") and result.positive == "spam"
    assert_metrics(result, sklearn_binary(names[y], names[pred], p, "spam"))
    # positive="ham": p is then ham's probability (the 1-D score is the positive class's)
    flipped = classification_performance(names[y], names[pred], 1 - p, positive="ham")
    assert flipped.positive == "ham"
    assert_metrics(flipped, sklearn_binary(names[y], names[pred], 1 - p, "ham"))
    assert flipped.metrics["calibration_error"] == close(
        ece_loop(1 - p, names[y] == "ham"))


def test_two_score_columns_and_input_kinds_agree() -> None:
    y, pred, p = binary_sample(6, n=500)
    one = classification_performance(y, pred, p)
    both = classification_performance(y, pred, np.column_stack([1 - p, p]))
    listed = classification_performance(y.tolist(), pred.tolist(), p.tolist())
    series = classification_performance(pd.Series(y), pd.Series(pred), pd.Series(p))
    arrow = classification_performance(pa.array(y), pa.array(pred), pa.array(p))
    floats = classification_performance(y.astype(float), pred, p, classes=[0, 1])
    for other in (both, listed, series, arrow, floats):
        assert other.metrics == close(one.metrics)
    booleans = classification_performance(y == 1, pred == 1, p)
    assert booleans.classes == (False, True) and booleans.positive is True
    assert booleans.metrics == close(one.metrics)


# -- multiclass ------------------------------------------------------------------------------

@pytest.mark.parametrize(("seed", "k", "ties"), [(10, 3, False), (11, 5, False), (12, 4, True),
                                                 (13, 6, True)])
def test_multiclass_equals_sklearn(seed: int, k: int, ties: bool) -> None:
    y, pred, scores = multiclass_sample(seed, k, ties=ties)
    result = classification_performance(y, pred, scores)
    assert (result.task, result.classes, result.positive) == ("multiclass", tuple(range(k)),
                                                              None)
    assert_metrics(result, sklearn_multiclass(y, pred, scores, list(range(k))))
    top = scores.argmax(axis=1)
    assert result.metrics["calibration_error"] == close(
        ece_loop(scores.max(axis=1), top == y))
    assert result.notes == {}


def test_string_classes_in_model_order_and_named_score_columns() -> None:
    y, pred, scores = multiclass_sample(14, 3, ties=True)
    order = ["cherry", "apple", "banana"]  # a model's classes_, not sorted
    names = np.array(order, dtype=object)
    frame = pd.DataFrame(scores, columns=[f"proba_{c}" for c in order])
    result = classification_performance(names[y], names[pred], frame, classes=order)
    assert result.classes == tuple(order)
    ranked = sorted(order)  # scikit-learn reads score columns in sorted class order
    columns = [order.index(c) for c in ranked]
    assert_metrics(result, sklearn_multiclass(names[y], names[pred], scores[:, columns],
                                              ranked))
    # the logbook's proba_<class> columns are put in class order by name
    shuffled = frame[["proba_banana", "proba_cherry", "proba_apple"]]
    again = classification_performance(names[y], names[pred], shuffled, classes=order)
    assert again.metrics == close(result.metrics)


def test_macro_averages_leave_out_undefined_classes_as_sklearn_nan_does() -> None:
    y, pred, scores = multiclass_sample(15, 4)
    keep = (y != 3) & (pred != 2)  # class 3 is never labelled, class 2 never predicted
    y, pred, scores = y[keep], pred[keep], scores[keep]
    result = classification_performance(y, pred, scores, classes=[0, 1, 2, 3])
    # scikit-learn's one-vs-rest AUC is NaN once a class is not labelled: average by hand
    assert_metrics(result, sklearn_multiclass(y, pred, scores, [0, 1, 2, 3], auc=False))
    per_class = [roc_auc_score(y == c, scores[:, c]) for c in (0, 1, 2)]
    assert result.metrics["roc_auc_ovr"] == close(np.mean(per_class))
    assert result.notes["precision_macro"] == (
        "undefined for [2] (never predicted): averaged over the others")
    assert result.notes["recall_macro"] == (
        "undefined for [3] (never labelled): averaged over the others")
    assert "[3]" in result.notes["roc_auc_ovr"]
    # F1 leaves out only classes neither labelled nor predicted: the registry's convention
    assert result.metrics["f1_macro"] == close(
        f1_score(y, pred, average="macro", zero_division=0))


# -- calibration error -----------------------------------------------------------------------

def test_calibration_error_by_hand() -> None:
    # bins: 0.1 → [.1,.2); 0.3, 0.35 → [.3,.4); 0.8 → [.8,.9); 0.95 → [.9,1]
    # (|0 − .1| + 2·|.5 − .325| + |1 − .8| + |1 − .95|) / 5 = 0.7 / 5
    p = np.array([0.1, 0.3, 0.35, 0.8, 0.95])
    y = np.array([0, 1, 0, 1, 1])
    result = classification_performance(y, (p >= 0.5).astype(int), p)
    assert result.metrics["calibration_error"] == close(0.14)
    # top-label: confidences .7 (right), .4 (tie → class 0, wrong), .6 (wrong), .5 (right)
    # (.3 + .4 + .6 + .5) / 4
    scores = np.array([[.7, .2, .1], [.4, .4, .2], [.1, .3, .6], [.25, .5, .25]])
    multi = classification_performance([0, 1, 1, 1], [0, 0, 2, 1], scores, classes=[0, 1, 2])
    assert multi.metrics["calibration_error"] == close(0.45)
    assert calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0.0


def test_roc_auc_counts_ties_as_one_half() -> None:
    # positives .4, .8 against negatives .1, .4: (1 + ½) + 2 out of 4 pairs
    score = np.array([0.1, 0.4, 0.4, 0.8])
    positive = np.array([False, True, False, True])
    assert roc_auc(score, positive) == 0.875 == roc_auc_score(positive, score)
    assert math.isnan(roc_auc(score, np.zeros(4, dtype=bool)))


# -- what a window cannot define -------------------------------------------------------------

def test_a_window_with_one_class_reports_nan_with_reasons() -> None:
    result = classification_performance([0, 0, 0], [0, 1, 0], [0.1, 0.7, 0.2],
                                        classes=[0, 1])
    assert result.metrics["accuracy"] == pytest.approx(2 / 3)
    assert result.metrics["precision"] == 0.0  # a positive was predicted, wrongly
    assert math.isnan(result.metrics["recall"]) and math.isnan(result.metrics["roc_auc"])
    assert result.notes["recall"] == "undefined: the positive class 1 is never labelled"
    assert result.notes["roc_auc"] == "undefined with one class labelled: every label is 0"
    assert result.metrics["log_loss"] == close(
        log_loss([0, 0, 0], [0.1, 0.7, 0.2], labels=[0, 1]))
    none = classification_performance([0, 0], [0, 0], [0.1, 0.2], classes=[0, 1])
    assert math.isnan(none.metrics["f1"]) and math.isnan(none.metrics["precision"])
    assert none.notes["f1"] == "undefined: the positive class 1 is neither labelled nor predicted"
    multi = classification_performance(["a", "a"], ["a", "b"], np.eye(3)[[0, 1]],
                                       classes=["a", "b", "c"])
    assert math.isnan(multi.metrics["roc_auc_ovr"])
    assert multi.notes["roc_auc_ovr"] == (
        "undefined for every class (labelled in every row or in none)")


def test_without_scores_the_score_metrics_are_nan_with_a_reason() -> None:
    y, pred, _ = binary_sample(20, n=200)
    result = classification_performance(y, pred)
    for name in ("roc_auc", "log_loss", "brier", "calibration_error"):
        assert math.isnan(result.metrics[name]) and "no scores" in result.notes[name]
    assert result.metrics["f1"] == close(f1_score(y, pred))
    y, pred, _ = multiclass_sample(21, 3, n=200)
    multi = classification_performance(y, pred)
    assert {k for k, v in multi.metrics.items() if math.isnan(v)} == set(multi.notes) == {
        "roc_auc_ovr", "log_loss", "calibration_error"}


# -- regression ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [30, 31, 32])
def test_regression_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 5, 2_000)
    if seed == 31:
        y = np.round(y)  # integer targets, about 1 in 30 of them 0
    if seed == 32:
        y[rng.random(y.size) < 0.05] = 0.0
    pred = y + rng.normal(0, 2, y.size)
    result = regression_performance(y, pred)
    nonzero = y != 0
    assert_metrics(result, {
        "mae": mean_absolute_error(y, pred), "rmse": root_mean_squared_error(y, pred),
        "r2": r2_score(y, pred),
        "mape": mean_absolute_percentage_error(y[nonzero], pred[nonzero])})
    zeros = int((~nonzero).sum())
    assert result.excluded == {"mape": zeros}
    assert ("mape" in result.notes) == (zeros > 0)
    if seed == 32:
        assert zeros > 0 and result.notes["mape"] == f"{zeros} of 2000 rows left out: " \
                                                     "their target is 0"


def test_regression_nan_with_reasons() -> None:
    constant = regression_performance([3.0, 3.0, 3.0], [2.0, 3.0, 4.0])
    assert math.isnan(constant.metrics["r2"])
    assert constant.notes["r2"] == "undefined: every target is the same"
    assert regression_performance([5.0], [4.0]).metrics["mae"] == 1.0
    zeros = regression_performance([0, 0], [1, -1])
    assert math.isnan(zeros.metrics["mape"]) and zeros.excluded == {"mape": 2}
    assert zeros.notes["mape"] == "undefined: every target is 0"


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (([], []), {}, "y_true is empty"),
    (([0, 1, 1], [0, 1]), {}, "y_pred has 2 values but y_true has 3"),
    (([0.0, np.nan, 1.0], [0, 1, 1]), {}, "y_true has 1 missing"),
    (([0, 1, 1], [0, None, 1]), {}, "y_pred has 1 missing"),
    (([0, 1], [0, 1], [0.2, 1.5]), {}, r"scores must be probabilities in \[0, 1\]"),
    (([0, 1], [0, 1], [-0.1, 0.5]), {}, r"scores must be probabilities in \[0, 1\]"),
    (([0, 1], [0, 1], [0.2, np.nan]), {}, "scores has NaN"),
    (([0, 1], [0, 1], [0.2, 0.5, 0.1]), {}, r"scores has shape \(3,\)"),
    (([0, 1], [0, 1], [["a", "b"], ["c", "d"]]), {}, "scores must be numbers"),
    (([0, 1, 2], [0, 1, 2], np.full((3, 3), 0.5)), {}, "scores rows must sum to 1"),
    (([0, 1, 2], [0, 1, 2], np.full((3, 2), 0.5)), {}, r"scores has shape \(3, 2\)"),
    ((["1", "0"], ["1", "0"]), {"classes": [0, 1]}, "y_true has values that are not classes"),
    (([1, 0], ["1", "0"]), {}, "labels and predictions mix types"),
    (([1, 1], [1, 1]), {}, "only one class was seen"),
    (([0, 1], [0, 1]), {"classes": [0, 1, 1]}, "classes must list two or more distinct"),
    (([0, 1], [0, 1]), {"positive": 2}, "positive 2 is not one of the classes"),
    (([0, 1, 2], [0, 1, 2]), {"positive": 2}, "positive applies to binary models"),
    ((np.zeros((2, 2)), [0, 1]), {}, "y_true must be one-dimensional"),
    (([[0], [1]], [0, 1]), {}, "y_true must hold labels"),
])
def test_classification_refuses_bad_input(args: tuple[Any, ...], kwargs: dict[str, Any],
                                          match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        classification_performance(*args, **kwargs)


@pytest.mark.parametrize(("y_true", "y_pred", "match"), [
    ([], [], "y_true is empty"),
    ([1.0, 2.0], [1.0], "y_pred has 1 values but y_true has 2"),
    ([1.0, np.nan], [1.0, 2.0], "y_true has 1 missing or infinite"),
    ([1.0, 2.0], [1.0, np.inf], "y_pred has 1 missing or infinite"),
    (["a", "b"], [1.0, 2.0], "y_true must be numbers"),
    ([[1.0], [2.0]], [1.0, 2.0], "y_true must be one-dimensional"),
])
def test_regression_refuses_bad_input(y_true: Any, y_pred: Any, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        regression_performance(y_true, y_pred)


# -- the result ------------------------------------------------------------------------------

def test_to_dict_is_json_with_nan_as_null() -> None:
    result = classification_performance(np.array([0, 0]), np.array([0, 1]), [0.3, 0.6],
                                        classes=np.array([0, 1]))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["metrics"]["roc_auc"] is None and data["metrics"]["accuracy"] == 0.5
    assert data["classes"] == [0, 1] and data["positive"] == 1 and data["task"] == "binary"
    assert data["notes"]["roc_auc"] == result.notes["roc_auc"]
    assert json.loads(json.dumps(regression_performance([0.0, 1.0], [0.5, 1.0]).to_dict(),
                                 allow_nan=False))["excluded"] == {"mape": 1}


def test_delta_is_current_minus_holdout_for_shared_names() -> None:
    result = PerformanceResult(task="binary", n=10, metrics={
        "accuracy": 0.8, "roc_auc": math.nan, "calibration_error": 0.05})
    delta = result.delta({"accuracy": 0.9, "roc_auc": 0.7, "brier": 0.1, "n": 500.0})
    assert set(delta) == {"accuracy", "roc_auc"}
    assert delta["accuracy"] == pytest.approx(-0.1) and math.isnan(delta["roc_auc"])
    assert math.isnan(result.delta({"accuracy": None})["accuracy"])


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_names_match_the_registrys_holdout_metrics(task: str) -> None:
    # the same model on the same rows: every holdout metric has a partner here, ΔM = 0
    rng = np.random.default_rng(40)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    signal = X["a"] + 0.5 * X["b"] + rng.normal(0, 0.7, 400)
    model: Any
    if task == "regression":
        y = pd.Series(signal * 3 + 1)
        model = LinearRegression().fit(X, y)
    else:
        cuts = [0.0] if task == "binary" else [-0.6, 0.6]
        y = pd.Series(np.array(["low", "mid", "high"], dtype=object)[np.digitize(signal, cuts)])
        model = LogisticRegression().fit(X, y)
    holdout = holdout_metrics(model, X, y, task)  # type: ignore[arg-type]
    outputs = model_outputs(model, X, task)  # type: ignore[arg-type]
    if task == "regression":
        result = regression_performance(y, outputs["prediction"])
    else:
        scores = outputs.drop(columns="prediction")
        result = classification_performance(y, outputs["prediction"], scores,
                                            classes=list(model.classes_))
    delta = result.delta(holdout)
    assert set(delta) == set(holdout) - {"n"}
    assert delta == pytest.approx(dict.fromkeys(delta, 0.0), abs=1e-12)
