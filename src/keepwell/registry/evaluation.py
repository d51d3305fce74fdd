"""Holdout metrics computed at registration, with scikit-learn's implementations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from keepwell.registry.outputs import model_outputs as outputs_of
from keepwell.registry.signature import Task

__all__ = ["holdout_metrics", "model_outputs"]


def model_outputs(model: Any, X: pd.DataFrame, task: Task) -> pd.DataFrame:
    """What the model says on ``X`` as a frame on ``X``'s index: ``prediction``, and
    ``score`` (binary) or one ``proba_<class>`` column per class (multiclass) when it has
    ``predict_proba`` (see :mod:`keepwell.registry.outputs`)."""
    return pd.DataFrame(outputs_of(model, X, task).columns(), index=X.index)


def holdout_metrics(model: Any, X: pd.DataFrame, y: pd.Series, task: Task, *,
                    outputs: pd.DataFrame | None = None) -> dict[str, float]:
    """Standard metrics of ``model`` on a holdout set, as plain floats (``outputs``: the
    model's :func:`model_outputs` on ``X``, when already computed)."""
    if outputs is None:
        outputs = model_outputs(model, X, task)
    pred = outputs["prediction"].to_numpy()
    truth = y.to_numpy()
    result: dict[str, float] = {"n": float(len(y))}
    if task == "regression":
        result["mae"] = skm.mean_absolute_error(truth, pred)
        result["rmse"] = float(np.sqrt(skm.mean_squared_error(truth, pred)))
        result["r2"] = skm.r2_score(truth, pred)
        return {k: float(v) for k, v in result.items()}
    result["accuracy"] = skm.accuracy_score(truth, pred)
    if task == "binary":
        positive = model.classes_[1]
        result["precision"] = skm.precision_score(truth, pred, pos_label=positive,
                                                  zero_division=0)
        result["recall"] = skm.recall_score(truth, pred, pos_label=positive, zero_division=0)
        result["f1"] = skm.f1_score(truth, pred, pos_label=positive, zero_division=0)
        if "score" in outputs and len(np.unique(truth)) == 2:
            score = outputs["score"].to_numpy()
            result["roc_auc"] = skm.roc_auc_score(truth == positive, score)
            result["log_loss"] = skm.log_loss(truth == positive, score, labels=[False, True])
            result["brier"] = skm.brier_score_loss(truth == positive, score)
    else:
        result["f1_macro"] = skm.f1_score(truth, pred, average="macro", zero_division=0)
        proba_cols = [c for c in outputs.columns if c.startswith("proba_")]
        if proba_cols:
            result["log_loss"] = skm.log_loss(truth, outputs[proba_cols].to_numpy(),
                                              labels=list(model.classes_))
    return {k: float(v) for k, v in result.items()}
