"""The two-proportion z-test for a binary column."""

from __future__ import annotations

import math
from typing import ClassVar

from scipy import special

from keepwell.errors import ValidationError
from keepwell.stats.drift.base import ColumnKind, DriftResult, DriftTest, StatisticKind
from keepwell.stats.drift.columns import CategoricalColumn, NumericColumn

__all__ = ["TwoProportionZTest", "binary_counts", "cohen_h", "two_proportion_z"]


def two_proportion_z(k_reference: int, n_reference: int, k_current: int,
                     n_current: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic of ``k/n`` current vs reference, and its two-sided
    p-value: ``z = (q - p) / sqrt(P (1 - P) (1/n_ref + 1/n_cur))``, ``P`` the pooled share.

    Examples
    --------
    >>> z, p = two_proportion_z(500, 1000, 560, 1000)
    >>> round(z, 3), round(p, 4)
    (2.688, 0.0072)
    """
    p, q = k_reference / n_reference, k_current / n_current
    pooled = (k_reference + k_current) / (n_reference + n_current)
    variance = pooled * (1 - pooled) * (1 / n_reference + 1 / n_current)
    if variance <= 0.0:
        return 0.0, 1.0
    z = (q - p) / math.sqrt(variance)
    return z, float(special.erfc(abs(z) / math.sqrt(2)))


def cohen_h(p: float, q: float) -> float:
    """Cohen's ``h = |2·asin(√q) - 2·asin(√p)|``, the difference of proportions on the scale
    where its sampling variance is constant (Cohen: 0.2 small, 0.5 medium)."""
    return abs(2 * math.asin(math.sqrt(q)) - 2 * math.asin(math.sqrt(p)))


def binary_counts(data: NumericColumn | CategoricalColumn, *,
                  feature: str = "") -> tuple[int, int, int, int]:
    """``(k_ref, n_ref, k_cur, n_cur)``: how many reference and current values are the
    reference's *positive* value — its larger value if numeric (1 of 0/1), its most frequent
    category if categorical. Any other current value counts as not positive."""
    ref = data.reference
    if isinstance(data, NumericColumn):
        values = data.reference.values
        if not data.reference.is_binary:
            raise _not_binary(feature, int(values.size))
        at, below = data.positions
        k_current = int(at[-1] - below[-1])
        if data.reference.sample is not None or values.size == 1:
            share = 1.0 - float(data.reference.cdf_below[-1])
        else:  # from a profile: the mean of a two-valued column gives the share exactly
            share = (data.reference.mean - values[0]) / (values[-1] - values[0])
        return round(share * ref.count), ref.count, k_current, data.n
    reference = data.reference
    if len(reference.categories) > 2 or reference.other_count:
        raise _not_binary(feature, len(reference.categories) + (reference.other_count > 0))
    return int(reference.counts[0]), reference.count, int(data.current_counts[0]), data.n


def _not_binary(feature: str, levels: int) -> ValidationError:
    return ValidationError(f"z compares binary columns; {feature!r} has {levels} or more "
                           "values in the reference (use chisquare or ks).")


class TwoProportionZTest(DriftTest):
    """Two-proportion z-test: did the share of a binary column's positive value change?

    ``z = (q - p) / sqrt(P·(1 - P)·(1/n_ref + 1/n_cur))``, ``p`` and ``q`` the reference and
    current share of the positive value (the larger of two numbers, or the reference's most
    frequent category), ``P`` the pooled share; two-sided p-value from the standard normal.
    ``z²`` equals Pearson's χ² of the 2 × 2 table (``chi2_contingency(correction=False)``).
    The effect size is Cohen's ``h = |2·asin√q - 2·asin√p|``; the default 0.25 matches the
    chi-square test's Cohen's w of 0.25 (for two cells, ``w ≈ h``).

    Source: Fleiss, J. L., Levin, B. and Paik, M. C. (2003), *Statistical Methods for Rates
    and Proportions*, 3rd ed., §2.6; Cohen, J. (1988), ch. 6; Evidently,
    ``evidently/calculations/stattests/z_stattest.py``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Significance level; ``None`` judges by h alone.
    threshold : float, default 0.25
        Smallest Cohen's h that counts as drift.

    Returns
    -------
    DriftResult
        ``statistic`` is z, ``effect`` Cohen's h.

    Raises
    ------
    ValidationError
        The reference has more than two values, or the current values are empty or all
        missing.

    Examples
    --------
    >>> reference = [0] * 700 + [1] * 300
    >>> TwoProportionZTest().compare(reference, [0] * 68 + [1] * 32).drifted
    False
    >>> result = TwoProportionZTest().compare(reference, [0] * 450 + [1] * 550)
    >>> result.drifted, round(result.effect, 2)
    (True, 0.51)
    """

    name: ClassVar[str] = "z"
    kind: ClassVar[StatisticKind] = StatisticKind.P_VALUE
    applies_to: ClassVar[frozenset[ColumnKind]] = frozenset({"numeric", "categorical"})
    effect_name: ClassVar[str] = "cohen_h"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.25) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        k_ref, n_ref, k_cur, n_cur = binary_counts(data, feature=feature)
        z, p = two_proportion_z(k_ref, n_ref, k_cur, n_cur)
        h = cohen_h(k_ref / n_ref, k_cur / n_cur)
        return self.result(data, feature=feature, statistic=z, p_value=p, effect=h)
