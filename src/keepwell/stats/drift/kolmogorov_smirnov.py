"""The two-sample Kolmogorov–Smirnov test, read from the reference's quantile function."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy import special, stats

from keepwell.stats.drift.base import ColumnKind, DriftResult, DriftTest, StatisticKind
from keepwell.stats.drift.columns import CategoricalColumn, NumericColumn

__all__ = ["KolmogorovSmirnov", "ks_p_value", "ks_statistic", "ks_test"]

SMIRNOV_MAX_N = 1_000  # above this effective size, Kolmogorov's limit (see ks_p_value)
EXACT_MAX_N = 10_000  # raw samples up to this size get scipy's exact two-sample p-value


def ks_statistic(data: NumericColumn) -> float:
    """``D = sup_x |F_ref(x) - F_cur(x)|``, the smallest the reference summary allows.

    Both CDFs are monotone, so the supremum is reached at or just below a grid value. There
    the grid bounds the reference CDF to an interval (:mod:`keepwell.stats.drift.reference`),
    and D is the largest distance from the current CDF to those intervals: the KS distance to
    the reference CDF closest to the current sample among all those the profile allows. It
    never exceeds the exact D (up to ``1 / n_ref``) and falls short of it by at most
    ``error_bound``; from raw reference values the intervals are points and D is exact.
    """
    cdf_low, cdf_high, below_low, below_high = data.reference.bounds
    cur_at, cur_below = data.current_cdf
    gap_at = np.maximum(np.maximum(cdf_low - cur_at, cur_at - cdf_high), 0.0)
    gap_below = np.maximum(np.maximum(below_low - cur_below, cur_below - below_high), 0.0)
    return float(max(gap_at.max(), gap_below.max()))


def ks_p_value(d: float, n_reference: int, n_current: int) -> float:
    """Two-sided p-value of ``D`` for samples of ``n_reference`` and ``n_current`` values.

    ``scipy.stats.kstwo.sf(D, round(n_e))`` with ``n_e = n·m / (n + m)``, which is what
    ``scipy.stats.ks_2samp(method="asymp")`` reports, while ``n_e <= 1000``. Above, Kolmogorov's
    limiting distribution ``Q(√n_e · D)`` (``scipy.special.kolmogorov``): kstwo's series costs
    up to a second per call at ``n_e = 10^6`` in the tail, and the limit is never smaller
    than kstwo (a conservative p-value) and larger by at most 5 % of itself at
    ``n_e = 1000`` and 1 % at ``n_e >= 10,000`` (for p >= 0.01).

    Examples
    --------
    >>> round(ks_p_value(0.1, 500, 500), 4)
    0.0125
    """
    n_e = n_reference * n_current / (n_reference + n_current)
    if n_e <= SMIRNOV_MAX_N:
        return float(np.clip(stats.kstwo.sf(d, round(n_e)), 0.0, 1.0))
    return float(special.kolmogorov(math.sqrt(n_e) * d))


def ks_test(data: NumericColumn) -> tuple[float, float]:
    """``(D, p)`` for a prepared column.

    Raw reference values and samples of at most 10,000 values: ``scipy.stats.ks_2samp``
    itself, whose exact two-sample distribution counts the atom of the discrete statistic at
    D (``kstwo`` does not, and at 300 vs 300 values rejects 7 % of same-distribution pairs at
    the 5 % level). Otherwise D from the grid and :func:`ks_p_value`.
    """
    ref = data.reference
    if ref.sample is not None and max(ref.count, data.n) <= EXACT_MAX_N:
        exact = stats.ks_2samp(ref.sample, data.values)
        return float(exact.statistic), float(exact.pvalue)
    d = ks_statistic(data)
    return d, ks_p_value(d, ref.count, data.n)


class KolmogorovSmirnov(DriftTest):
    """Two-sample Kolmogorov–Smirnov test: the largest gap between the two CDFs.

    ``D = sup_x |F_ref(x) - F_cur(x)|``; the p-value is Smirnov's two-sample distribution at
    the effective size ``n_ref·n_cur / (n_ref + n_cur)`` (see :func:`ks_p_value`), and the
    effect size is D itself (the largest difference in the share of values below any cut).
    Drift when ``p < alpha`` and ``D >= threshold``; the default 0.1 is the D of a normal
    variable shifted by 0.25 standard deviations.

    From a profile, the quantile grid bounds ``F_ref`` to within a step and D is the smallest
    KS distance any reference the profile allows could have (:func:`ks_statistic`): it never
    overstates drift, and is within ``1 / (m - 1) + 1 / n_ref`` of the D between the raw
    samples (0.01 for m = 101 quantiles), so the p-value lies between the p-values at D ± that
    bound. From raw reference values D is exact, equal to
    ``scipy.stats.ks_2samp``'s, and so is the p-value up to 10,000 values a side (scipy's
    exact distribution; see :func:`ks_test`). NannyML estimates KS the same way from
    reference quantile bins for references over 10,000 rows.

    Source: Smirnov, N. (1939), "On the estimation of the discrepancy between empirical
    curves of distribution for two independent samples"; Hodges, J. L. (1958), Arkiv för
    Matematik 3(5); ``scipy.stats.ks_2samp``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Significance level; ``None`` judges by D alone.
    threshold : float, default 0.1
        Smallest D that counts as drift.

    Returns
    -------
    DriftResult
        ``statistic`` and ``effect`` are D.

    Raises
    ------
    ValidationError
        The column is not numeric, or the current values are empty or all missing.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=2_000)
    >>> KolmogorovSmirnov().compare(reference, rng.normal(size=2_000)).drifted
    False
    >>> result = KolmogorovSmirnov().compare(reference, rng.normal(0.5, 1, size=2_000))
    >>> result.drifted, round(result.statistic, 2)
    (True, 0.22)
    """

    name: ClassVar[str] = "ks"
    kind: ClassVar[StatisticKind] = StatisticKind.P_VALUE
    applies_to: ClassVar[frozenset[ColumnKind]] = frozenset({"numeric"})
    effect_name: ClassVar[str] = "ks_d"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.1) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        assert isinstance(data, NumericColumn)  # evaluate() checked the column's kind
        d, p = ks_test(data)
        return self.result(data, feature=feature, statistic=d, p_value=p, effect=d)
