"""Multivariate drift: changes in how columns move together, which per-column tests miss.

- :class:`ReconstructionDrift` — PCA reconstruction error against a band from the
  reference's chunks (NannyML's data reconstruction method); its fitted state is JSON.
- :class:`DomainClassifierDrift` — how well a classifier tells reference rows from current
  rows: cross-validated ROC AUC with DeLong's confidence interval.
"""

from __future__ import annotations

from keepwell.stats.multivariate.domain_classifier import (
    DomainClassifierDrift,
    DomainClassifierResult,
    delong_auc,
)
from keepwell.stats.multivariate.reconstruction import ReconstructionDrift, ReconstructionResult

__all__ = [
    "DomainClassifierDrift",
    "DomainClassifierResult",
    "ReconstructionDrift",
    "ReconstructionResult",
    "delong_auc",
]
