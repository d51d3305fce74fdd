"""What the monitor needs from the training data, fitted once at registration and stored
with the version as JSON: the PCA of the features (multivariate drift) and the calibration of
the holdout scores (performance estimated without labels). The raw rows are never kept, and
a reference that cannot be fitted is noted, never a reason to refuse the registration."""

from __future__ import annotations

from typing import Any

import pandas as pd

from keepwell.errors import KeepwellError
from keepwell.registry.signature import Signature
from keepwell.stats.estimation import CBPE
from keepwell.stats.multivariate import ReconstructionDrift

__all__ = ["FORMAT", "fit_references"]

FORMAT = 1


def fit_references(X: pd.DataFrame, signature: Signature,
                   holdout: tuple[pd.Series, pd.DataFrame] | None = None) -> dict[str, Any]:
    """The version's monitoring references. ``holdout`` is the holdout's labels and the
    model's outputs on it (``prediction``, ``score`` or ``proba_<class>``)."""
    references: dict[str, Any] = {"format": FORMAT, "notes": {}}
    try:
        references["reconstruction"] = ReconstructionDrift().fit(
            X, columns=signature.feature_names).to_dict()
    except KeepwellError as exc:
        references["notes"]["reconstruction"] = str(exc)
    if signature.task == "regression":
        references["notes"]["cbpe"] = ("CBPE estimates the performance of classifiers only; "
                                       "this is a regression model")
        return references
    if holdout is None:
        references["notes"]["cbpe"] = "no holdout was given at registration"
        return references
    labels, outputs = holdout
    classes = list(signature.classes or ())
    # CBPE takes the positive class's scores (1-d) or every class's, in the model's order.
    columns = ["score"] if signature.task == "binary" else [f"proba_{c}" for c in classes]
    scores: Any = None
    if all(c in outputs.columns for c in columns):
        scores = outputs["score"] if signature.task == "binary" else outputs[columns]
    if scores is None:
        references["notes"]["cbpe"] = "the model gives no probabilities (predict_proba)"
        return references
    try:
        references["cbpe"] = CBPE().fit(labels, scores, y_pred=outputs["prediction"],
                                        classes=classes).to_dict()
    except KeepwellError as exc:
        references["notes"]["cbpe"] = str(exc)
    return references
