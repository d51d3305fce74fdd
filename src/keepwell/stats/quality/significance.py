"""The exact tests of the rate checks, and their verdict: Holm over the report, then size."""

from __future__ import annotations

import dataclasses
import math

from scipy import stats

from keepwell.stats.drift.verdict import holm
from keepwell.stats.quality.results import ColumnQuality

__all__ = ["judge", "out_of_range_p_value", "rate_increase_p_value"]


def rate_increase_p_value(k_reference: int, n_reference: int, k_current: int,
                          n_current: int) -> float:
    """One-sided Fisher exact p-value that the current share ``k/n`` exceeds the reference's.

    ``p = P(X >= k_current)``, ``X`` hypergeometric: ``n_current`` draws from ``N = n_ref +
    n_cur`` items of which ``K = k_ref + k_cur`` are counted. Equal to
    ``scipy.stats.fisher_exact(table, alternative="greater")``.

    Examples
    --------
    >>> round(rate_increase_p_value(5, 100, 15, 100), 4)
    0.0159
    >>> rate_increase_p_value(10, 100, 0, 50)
    1.0
    """
    if k_current <= 0 or n_current <= 0:
        return 1.0
    total = n_reference + n_current
    counted = k_reference + k_current
    p = float(stats.hypergeom.sf(k_current - 1, total, counted, n_current))
    return min(max(p, 0.0), 1.0)


def out_of_range_p_value(k: int, n_reference: int, n_current: int) -> float:
    """``P(S >= k)`` for ``S`` current values outside the range of ``n_reference`` values when
    all ``N = n_ref + n_cur`` come from one continuous distribution (exact, distribution-free).

    Every arrangement of the pooled sample is equally likely, so the chance that the lowest
    ``a`` and the highest ``b`` are all current is ``g(a + b)``, ``g(s) = C(n_cur, s) / C(N,
    s)``; summing over ``a + b = s`` gives ``P(S >= k) = (k + 1)·g(k) - k·g(k + 1) = g(k)·(1 +
    k·n_ref / (N - k))``. With ties or a widened range ``S`` can only be smaller, so this is
    then an upper bound.

    Examples
    --------
    >>> round(out_of_range_p_value(1, 99, 1), 4)   # 2 chances in 100
    0.02
    >>> f"{out_of_range_p_value(12, 5_000, 2_000):.1e}"
    '2.8e-06'
    """
    if k <= 0 or n_reference <= 0:
        return 1.0
    if k > n_current:
        return 0.0
    total = n_reference + n_current
    log_g = (math.lgamma(n_current + 1) - math.lgamma(n_current - k + 1)
             - math.lgamma(total + 1) + math.lgamma(total - k + 1))
    return min(1.0, math.exp(log_g) * (1.0 + k * n_reference / (total - k)))


_CHECKS = (("missing", "missing_rate"), ("out_of_range", "out_of_range"),
           ("unseen", "unseen_categories"))


def judge(columns: list[ColumnQuality], alpha: float) -> list[ColumnQuality]:
    """Holm-adjust every rate test of the report, flag the significant and material ones,
    and list each column's problems."""
    tests = {(i, field): check for i, column in enumerate(columns) for field, _ in _CHECKS
             if (check := getattr(column, field)) is not None and check.p_value is not None}
    adjusted = holm([check.p_value for check in tests.values()]).tolist() if tests else []
    judged_checks = {
        key: dataclasses.replace(check, p_value_adjusted=p,
                                 flagged=p < alpha and check.increase >= check.min_increase)
        for (key, check), p in zip(tests.items(), adjusted, strict=True)}
    judged = []
    for i, column in enumerate(columns):
        missing = judged_checks.get((i, "missing"), column.missing)
        out_of_range = judged_checks.get((i, "out_of_range"), column.out_of_range)
        unseen = judged_checks.get((i, "unseen"), column.unseen)
        problems = [name for name, bad in (
            ("type_errors", column.type_errors > 0), ("non_finite", column.non_finite > 0),
            ("missing_rate", missing.flagged),
            ("out_of_range", out_of_range is not None and out_of_range.flagged),
            ("unseen_categories", unseen is not None and unseen.flagged)) if bad]
        judged.append(dataclasses.replace(column, missing=missing, out_of_range=out_of_range,
                                          unseen=unseen, problems=tuple(problems)))
    return judged
