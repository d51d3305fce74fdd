"""Pure numerics: numpy and scipy in, numbers out; no I/O, no settings, no database.

- :mod:`keepwell.stats.drift` — univariate drift tests against a reference profile, and the
  verdict rule that combines significance with effect size.
- :mod:`keepwell.stats.detectors` — streaming concept-drift detectors (DDM, EDDM, ADWIN,
  Page-Hinkley, KSWIN) with River's API, and an evaluation harness.
- :mod:`keepwell.stats.multivariate` — multivariate drift: PCA reconstruction error
  (NannyML's method; fitted state as JSON) and a domain classifier (cross-validated ROC AUC
  with DeLong's interval).
- :mod:`keepwell.stats.estimation` — performance without labels (CBPE).
- :mod:`keepwell.stats.performance` — performance from labels for one window
  (classification and regression metrics, ΔM against the holdout metrics).
- :mod:`keepwell.stats.quality` — data quality of a window against a signature and
  reference profile: schema, type errors, non-finite values, and rises in missing,
  out-of-range and unseen values (significance with Holm plus a minimum rise).
- :mod:`keepwell.stats.fairness` — per-group rates and between-group gaps (demographic
  parity, disparate impact and the four-fifths rule, equalized odds), checked against
  Fairlearn.
"""

from __future__ import annotations

__all__: list[str] = []
