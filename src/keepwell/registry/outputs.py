"""What a model says on a batch: predictions and class probabilities, as numpy arrays.

A classifier with ``predict_proba`` is asked for its probabilities; its predictions are then
read off them when scikit-learn's own code makes ``predict`` the class of highest
probability (:data:`ARGMAX_CLASSIFIERS`, directly or as the last step of a ``Pipeline``), so
a batch costs one model call instead of two. Rows whose two highest probabilities are within
``1e-9`` of each other (a tie, or a decision score too close to 0 for the probabilities to
tell its sign) are asked of ``predict`` itself, so the predictions are always exactly those of
``model.predict``. Any other model (a tuned decision threshold, Platt-scaled SVMs, custom
classes) is asked both ``predict`` and ``predict_proba``.

Model calls run under one lock per process. scikit-learn's ``Parallel`` (used by every
``ColumnTransformer`` and forest, even with ``n_jobs=1``) reads and resets the process-wide
``warnings.filters`` around each task; two scoring threads doing so at once hand each other an
empty filter list, and scikit-learn then warns "``sklearn.utils.parallel.delayed`` should be
used with ``sklearn.utils.parallel.Parallel``" (an error under ``-W error``, a wrong answer
for that request). The calls hold the GIL almost throughout, so the lock costs no throughput.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keepwell.errors import NonFinitePredictionError
from keepwell.registry.signature import Task

__all__ = ["ARGMAX_CLASSIFIERS", "ModelOutputs", "model_outputs"]

#: Classifiers whose ``predict`` is, in scikit-learn's code, the class of highest
#: ``predict_proba`` (a monotone map of the same scores). Matched by exact type, so a subclass
#: that overrides ``predict`` is not trusted; a module that moves in a later scikit-learn only
#: costs the second call.
ARGMAX_CLASSIFIERS = frozenset({
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.naive_bayes.GaussianNB",
})
_PIPELINE = "sklearn.pipeline.Pipeline"
_TIE = 1e-9
_MODEL_CALLS = threading.Lock()


@dataclass(frozen=True)
class ModelOutputs:
    """A model's answers for ``n`` rows.

    ``prediction`` has one entry per row; ``probabilities`` is ``(n, k)`` for a classifier
    with ``predict_proba`` (columns in ``classes`` order), else None. The logged and returned
    columns are ``prediction`` and, for a binary task, ``score`` (the probability of
    ``classes[1]``) or, for more classes, ``proba_<class>`` per class.
    """

    task: Task
    prediction: np.ndarray
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] = ()

    def __len__(self) -> int:
        return len(self.prediction)

    @property
    def score(self) -> np.ndarray | None:
        if self.task == "binary" and self.probabilities is not None:
            return self.probabilities[:, 1]
        return None

    def columns(self) -> dict[str, np.ndarray]:
        """The output columns by name, in the logbook's order."""
        out = {"prediction": self.prediction}
        if self.probabilities is None:
            return out
        if self.task == "binary":
            out["score"] = self.probabilities[:, 1]
            return out
        for i, cls in enumerate(self.classes):
            out[f"proba_{cls}"] = self.probabilities[:, i]
        return out

    def to_arrow(self) -> pa.Table:
        """The output columns as Arrow, typed as ``pa.Table.from_pandas`` of them would be
        (numbers and booleans straight from numpy; labels of other types through pandas)."""
        arrays = [pa.array(v) if v.dtype.kind in "biuf" else pa.array(pd.Series(v),
                                                                       from_pandas=True)
                  for v in self.columns().values()]
        return pa.Table.from_arrays(arrays, names=list(self.columns()))

    def check_finite(self) -> None:
        """Raise NonFinitePredictionError if a numeric output is NaN or infinite."""
        for values in self.columns().values():
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                raise NonFinitePredictionError(
                    "the model returned NaN or an infinite value, which cannot be sent as "
                    "JSON; check the model and the inputs it was given.")


def _final_step(model: Any) -> Any:
    if _type_name(model) == _PIPELINE and getattr(model, "steps", None):
        return model.steps[-1][1]
    return model


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _from_probabilities(model: Any, X: pd.DataFrame, proba: np.ndarray) -> np.ndarray | None:
    """``model.predict(X)`` read off ``proba``, or None if this model's cannot be."""
    classes = getattr(model, "classes_", None)
    if _type_name(_final_step(model)) not in ARGMAX_CLASSIFIERS or classes is None \
            or np.ndim(classes) != 1 or proba.ndim != 2 or proba.shape[1] != len(classes) \
            or proba.shape[1] < 2:
        return None
    prediction: np.ndarray = np.asarray(classes).take(np.argmax(proba, axis=1))
    top = np.partition(proba, -2, axis=1)[:, -2:]
    close = np.flatnonzero(top[:, 1] - top[:, 0] <= _TIE)
    if close.size:
        prediction[close] = np.asarray(model.predict(X.iloc[close]))
    return prediction


def model_outputs(model: Any, X: pd.DataFrame, task: Task) -> ModelOutputs:
    """What ``model`` says on ``X``: predictions, and probabilities for a classifier that has
    ``predict_proba`` (one call when the predictions follow from them, see the module).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> out = model_outputs(model, X, "binary")
    >>> out.prediction.tolist() == model.predict(X).tolist()
    True
    >>> sorted(out.columns())
    ['prediction', 'score']
    """
    with _MODEL_CALLS:
        if task == "regression" or not hasattr(model, "predict_proba"):
            return ModelOutputs(task, np.asarray(model.predict(X)))
        proba = np.asarray(model.predict_proba(X), dtype=float)
        prediction = _from_probabilities(model, X, proba)
        if prediction is None:
            prediction = np.asarray(model.predict(X))
    classes = tuple(getattr(model, "classes_", range(proba.shape[1])))
    return ModelOutputs(task, prediction, proba, classes)
