"""Model outputs (keepwell.registry.outputs): one model call where scikit-learn makes predict the
class of highest probability, and then exactly ``model.predict``'s answers.

Every estimator on the list is checked against its own ``predict`` and ``predict_proba`` on
held-out rows (exact equality: the predictions are labels, and the probabilities are the very
array ``predict_proba`` returns), for binary and multiclass, integer and string labels, bare
and in a Pipeline. Ties go to ``predict``; estimators off the list, and subclasses of those
on it, are asked ``predict`` itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

from keepwell.errors import NonFinitePredictionError
from keepwell.registry.outputs import ARGMAX_CLASSIFIERS, ModelOutputs, model_outputs

ESTIMATORS = [
    LogisticRegression(max_iter=500),
    LogisticRegressionCV(max_iter=500, cv=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                         use_legacy_attributes=False),
    DecisionTreeClassifier(max_depth=4, random_state=0), ExtraTreeClassifier(random_state=0),
    RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
    ExtraTreesClassifier(n_estimators=20, random_state=0),
    GradientBoostingClassifier(n_estimators=20, random_state=0),
    HistGradientBoostingClassifier(max_iter=20, random_state=0), GaussianNB(),
]


def _data(n_classes: int, labels: str, n: int = 600, seed: int = 0
          ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((n, 4)), columns=["a", "b", "c", "d"])
    scores = X.to_numpy() @ rng.normal(size=(4, n_classes)) + rng.gumbel(size=(n, n_classes))
    codes = scores.argmax(axis=1)
    y = np.array(["cat", "dog", "eel"])[codes] if labels == "str" else codes * 10 + 3
    test = pd.DataFrame(rng.standard_normal((400, 4)) * 1.5, columns=X.columns)
    return X, y, test


def _type_name(estimator: Any) -> str:
    return f"{type(estimator).__module__}.{type(estimator).__qualname__}"


def test_the_list_names_the_estimators_tested_here() -> None:
    assert {_type_name(e) for e in ESTIMATORS} == ARGMAX_CLASSIFIERS


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(("n_classes", "labels"), [(2, "int"), (3, "str")])
@pytest.mark.parametrize("piped", [False, True], ids=["bare", "pipeline"])
def test_predictions_are_exactly_predicts(estimator: Any, n_classes: int, labels: str,
                                          piped: bool) -> None:
    X, y, test = _data(n_classes, labels)
    model = make_pipeline(StandardScaler(), clone(estimator)) if piped else clone(estimator)
    model.fit(X, y)
    task = "binary" if n_classes == 2 else "multiclass"
    out = model_outputs(model, test, task)
    expected = model.predict(test)
    assert out.prediction.dtype == expected.dtype
    assert out.prediction.tolist() == expected.tolist()
    np.testing.assert_array_equal(out.probabilities, model.predict_proba(test))
    assert list(out.classes) == list(model.classes_)


def test_ties_are_asked_of_predict() -> None:
    """A zero decision score gives probabilities of exactly 0.5: argmax would say the first
    class, LogisticRegression.predict says it too (its rule is score > 0), and a score a hair
    above zero rounds to 0.5 as well while predict says the second class."""
    X, y, _ = _data(2, "int")
    model = LogisticRegression().fit(X, y)
    model.coef_[:] = 0.0
    rows = pd.DataFrame(np.zeros((3, 4)), columns=X.columns)
    for intercept in (0.0, 1e-300, -1e-300):
        model.intercept_[:] = intercept
        proba = model.predict_proba(rows)
        assert (proba == 0.5).all()
        out = model_outputs(model, rows, "binary")
        assert out.prediction.tolist() == model.predict(rows).tolist()
    assert model_outputs(model, rows, "binary").prediction.tolist() == [3, 3, 3]
    model.intercept_[:] = 1e-300
    assert model_outputs(model, rows, "binary").prediction.tolist() == [13, 13, 13]


def test_a_tuned_threshold_is_asked_of_predict() -> None:
    X, y, test = _data(2, "int")
    model = FixedThresholdClassifier(LogisticRegression(), threshold=0.9).fit(X, y)
    proba = model.predict_proba(test)
    argmax = model.classes_[proba.argmax(axis=1)]
    assert (argmax != model.predict(test)).any()  # the shortcut would be wrong here
    out = model_outputs(model, test, "binary")
    assert out.prediction.tolist() == model.predict(test).tolist()


class _Flipped(LogisticRegression):
    """A subclass whose predict is not the argmax: subclasses are never trusted."""

    def predict(self, X: Any) -> Any:
        first, second = self.classes_
        return np.where(super().predict(X) == first, second, first)


def test_a_subclass_is_asked_of_predict() -> None:
    X, y, test = _data(2, "int")
    model = _Flipped().fit(X, y)
    out = model_outputs(model, test, "binary")
    assert out.prediction.tolist() == model.predict(test).tolist()
    assert out.prediction.tolist() != LogisticRegression().fit(X, y).predict(test).tolist()


def test_regression_and_models_without_probabilities() -> None:
    X, y, test = _data(2, "int")
    reg = LinearRegression().fit(X, y.astype(float))
    out = model_outputs(reg, test, "regression")
    assert out.probabilities is None and list(out.columns()) == ["prediction"]
    np.testing.assert_array_equal(out.prediction, reg.predict(test))


@pytest.mark.parametrize(("labels", "n_classes"), [("int", 2), ("str", 2), ("str", 3),
                                                   ("bool", 2)])
def test_arrow_types_are_those_of_the_pandas_path(labels: str, n_classes: int) -> None:
    X, y, test = _data(n_classes, "str" if labels == "str" else "int")
    if labels == "bool":
        y = y == y[0]
    model = LogisticRegression().fit(X, y)
    out = model_outputs(model, test, "binary" if n_classes == 2 else "multiclass")
    via_pandas = pa.Table.from_pandas(pd.DataFrame(out.columns()), preserve_index=False)
    assert out.to_arrow().schema.equals(via_pandas.schema, check_metadata=False)
    assert out.to_arrow().equals(via_pandas.replace_schema_metadata(None))


def test_non_finite_outputs_are_refused() -> None:
    fine = ModelOutputs("regression", np.array([1.0, 2.0]))
    fine.check_finite()
    ModelOutputs("binary", np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]),
                 (0, 1)).check_finite()
    with pytest.raises(NonFinitePredictionError):
        ModelOutputs("regression", np.array([1.0, np.inf])).check_finite()
    with pytest.raises(NonFinitePredictionError):
        ModelOutputs("binary", np.array([1, 0]), np.array([[0.2, 0.8], [0.6, np.nan]]),
                     (0, 1)).check_finite()
    with pytest.raises(NonFinitePredictionError):
        ModelOutputs("multiclass", np.array([1, 0]), np.array([[np.nan, 0.2, 0.8]] * 2),
                     (0, 1, 2)).check_finite()


class _Watched(LogisticRegression):
    """Counts how many threads are inside predict_proba at once (and stays a while)."""

    inside = 0
    most = 0
    guard = threading.Lock()

    def predict_proba(self, X: Any) -> Any:
        with _Watched.guard:
            _Watched.inside += 1
            _Watched.most = max(_Watched.most, _Watched.inside)
        time.sleep(0.02)  # releases the GIL: without the lock, other threads come in
        try:
            return super().predict_proba(X)
        finally:
            with _Watched.guard:
                _Watched.inside -= 1


def test_model_calls_take_turns() -> None:
    """Concurrent scoring threads never run model code at the same time: scikit-learn's
    Parallel shares the process's warning filters, and two at once hand each other an empty
    list (then every delayed call warns)."""
    X, y, test = _data(2, "int")
    model = _Watched().fit(X, y)
    _Watched.inside = _Watched.most = 0
    start = threading.Barrier(4)  # all four call at once, however slow the machine

    def score() -> None:
        start.wait()
        model_outputs(model, test, "binary")

    threads = [threading.Thread(target=score) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _Watched.most == 1
