"""Pearson's chi-square test of homogeneity for a categorical column."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from keepwell.stats.drift.base import ColumnKind, DriftResult, DriftTest, StatisticKind
from keepwell.stats.drift.columns import CategoricalColumn, NumericColumn

__all__ = ["ChiSquare", "chi_square_homogeneity"]


def chi_square_homogeneity(reference_counts: ArrayLike,
                           current_counts: ArrayLike) -> tuple[float, int, float]:
    """Pearson's χ² for the 2 × k table of reference and current counts: (χ², dof, p).

    ``χ² = Σ_rows Σ_cells (O - E)² / E`` with ``E`` from the pooled shares, ``dof = k - 1``
    over the cells either sample holds; no continuity correction. Equal to
    ``scipy.stats.chi2_contingency(table, correction=False)``, which refuses empty cells.

    Examples
    --------
    >>> stat, dof, p = chi_square_homogeneity([50, 30, 20], [40, 30, 30])
    >>> round(stat, 3), dof, round(p, 3)
    (3.111, 2, 0.211)
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    dof = int(ref.size) - 1
    n_ref, n_cur = ref.sum(), cur.sum()
    if dof < 1 or n_ref == 0 or n_cur == 0:
        return 0.0, max(dof, 0), 1.0
    pooled = (ref + cur) / (n_ref + n_cur)
    stat = float(np.sum((ref - n_ref * pooled) ** 2 / (n_ref * pooled))
                 + np.sum((cur - n_cur * pooled) ** 2 / (n_cur * pooled)))
    return stat, dof, float(special.chdtrc(dof, stat))


def cohen_w(statistic: float, n_reference: int, n_current: int) -> float:
    """``w = sqrt(χ² / n_e)``, ``n_e = n·m / (n + m)``: ``sqrt(Σ (p_i - q_i)² / m_i)`` over the
    cells, ``m`` the pooled shares. Unlike Cramér's V it does not depend on the two sizes'
    ratio."""
    n_e = n_reference * n_current / (n_reference + n_current)
    return math.sqrt(statistic / n_e)


class ChiSquare(DriftTest):
    """Chi-square test of homogeneity: did the category frequencies change?

    ``χ² = Σ (O - E)² / E`` over the 2 × k table of reference and current counts, ``E`` from
    the pooled frequencies, ``k - 1`` degrees of freedom, no continuity correction (see
    :func:`chi_square_homogeneity`). The effect size is Cohen's ``w = sqrt(χ² / n_e)`` with
    ``n_e = n_ref·n_cur / (n_ref + n_cur)``; the default 0.25 is the w of a normal variable
    shifted by a quarter of a standard deviation, over deciles (Cohen: 0.1 small, 0.3 medium).

    Cells are the reference's categories plus one for everything else: the categories the
    profile pooled as rare (``other_count``) and those the reference never saw. A new category
    therefore counts against a reference count of zero (or of the pooled rare ones), and a
    large one is drift.

    Source: Pearson, K. (1900), Philosophical Magazine 50(302); Cohen, J. (1988), *Statistical
    Power Analysis for the Behavioral Sciences*, ch. 7; ``scipy.stats.chi2_contingency``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Significance level; ``None`` judges by w alone.
    threshold : float, default 0.25
        Smallest Cohen's w that counts as drift.

    Returns
    -------
    DriftResult
        ``statistic`` is χ², ``effect`` Cohen's w.

    Raises
    ------
    ValidationError
        The reference is a numeric profile, or the current values are empty or all missing.

    Examples
    --------
    >>> reference = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    >>> ChiSquare().compare(reference, ["a"] * 50 + ["b"] * 30 + ["c"] * 20).drifted
    False
    >>> result = ChiSquare().compare(reference, ["a"] * 20 + ["b"] * 30 + ["c"] * 50)
    >>> result.drifted, round(result.effect, 2)
    (True, 0.77)
    """

    name: ClassVar[str] = "chisquare"
    kind: ClassVar[StatisticKind] = StatisticKind.P_VALUE
    applies_to: ClassVar[frozenset[ColumnKind]] = frozenset({"categorical"})
    effect_name: ClassVar[str] = "cohen_w"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.25) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        assert isinstance(data, CategoricalColumn)  # evaluate() checked the column's kind
        stat, _, p = chi_square_homogeneity(data.reference_counts, data.current_counts)
        w = cohen_w(stat, data.reference.count, data.n)
        return self.result(data, feature=feature, statistic=stat, p_value=p, effect=w)
