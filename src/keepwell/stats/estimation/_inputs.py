"""The inputs CBPE takes, checked once: scores, labels, and predicted classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.estimation.metrics import FloatArray, IntArray

__all__ = ["class_indices", "label_array", "predicted_classes", "scores_matrix"]


def predicted_classes(y_pred: Any, matrix: FloatArray, classes: tuple[Any, ...],
                      binary: bool) -> IntArray:
    """Predicted class indices: given, or the model's rule (score > 0.5 for a binary model, as
    scikit-learn's ``predict``; otherwise the first most probable class)."""
    if y_pred is not None:
        return class_indices(label_array(y_pred, "y_pred", matrix.shape[0]), classes, "y_pred")
    rule: IntArray = ((matrix[:, 1] > 0.5) if binary else np.argmax(matrix, axis=1)
                      ).astype(np.intp)
    return rule


def scores_matrix(scores: Any, name: str) -> tuple[FloatArray, bool]:
    """Scores as an ``(n, k)`` float array (binary: ``[1 - p, p]``), checked; and whether the
    input was binary (one column)."""
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be numbers (class probabilities in [0, 1])"
                              ) from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValidationError(f"{name} is empty or has shape {array.shape}: give one score per "
                              "row (binary) or one column per class (multiclass)")
    if array.ndim == 2 and array.shape[1] == 2:
        raise ValidationError(f"{name} has two columns: for a binary model pass the positive "
                              "class's column alone (scores[:, 1])")
    finite = np.isfinite(array)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise ValidationError(f"{name} holds NaN or infinite values (first at row {row}): drop "
                              "or fix those rows first")
    if array.min() < 0 or array.max() > 1:
        raise ValidationError(f"{name} holds values outside [0, 1]: CBPE needs probabilities "
                              "(predict_proba), not margins or logits")
    if array.ndim == 1:
        return np.column_stack((1.0 - array, array)), True
    return np.ascontiguousarray(array), False


def label_array(values: Any, name: str, n: int) -> np.ndarray[Any, Any]:
    """One label per row, none missing."""
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValidationError(f"{name} has shape {array.shape} but scores has {n} rows: give "
                              "one label per row")
    if pd.isna(array).any():
        raise ValidationError(f"{name} holds missing labels: drop those rows first")
    return array


def class_indices(values: np.ndarray[Any, Any], classes: tuple[Any, ...], name: str
                  ) -> IntArray:
    """Each label's position in ``classes`` (``True`` and ``1.0`` match the class ``1``)."""
    if len(classes) <= 32:  # a comparison per class beats hashing every label
        indices = np.full(values.shape[0], -1, dtype=np.intp)
        for position, label in enumerate(classes):
            indices[values == label] = position
    else:
        indices = pd.Index(list(classes), dtype=object).get_indexer(values.astype(object))
    if (indices < 0).any():
        bad = values[np.flatnonzero(indices < 0)[0]]
        raise ValidationError(f"{name} holds {json_value(bad)!r}, which is not one of the classes "
                              f"{list(classes)}: pass classes= with every label")
    positions: IntArray = indices.astype(np.intp)
    return positions
