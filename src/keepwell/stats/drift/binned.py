"""What the binned distances share: the cells, the shares, the smoothing, the gate.

PSI, Jensen–Shannon, Kullback–Leibler and Hellinger compare two discrete distributions ``p``
(reference) and ``q`` (current) over the same cells:

- a numeric column: the reference profile's quantile bins (10 by default, each holding a
  tenth of the reference), the lowest and highest open-ended so that values beyond the
  reference's range count in them — the classic credit-scoring layout of PSI;
- a numeric column of few values (at most 20, each held by two reference rows on average;
  :mod:`keepwell.stats.drift.reference`): one cell per reference value, plus one for every
  value the reference never held — as Evidently does up to 20 values, except that new values
  share one cell (as new categories do). Quantile bins would merge the values: a 0/1 column's
  deciles are 0 and 1, a single bin, and every distance would be 0 whatever the change;
- a categorical column: the reference's categories, plus one cell for the rest (the
  categories the profile pooled as rare and the ones it never saw).

Their significance gate is Pearson's χ² homogeneity test over the same cells: under no
change, ``n_e·PSI``, ``2·n_e·KL``, ``8·n_e·JS²`` and ``8·n_e·H²`` (``n_e = n·m / (n + m)``)
all tend to the same χ²(k - 1) law as Pearson's statistic (Yurdakul, B. (2018), "Statistical
properties of population stability index", Western Michigan University), and Pearson's
statistic is the best behaved of them at small counts.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keepwell.errors import ValidationError
from keepwell.stats.drift.base import ColumnKind, DriftResult, DriftTest, StatisticKind
from keepwell.stats.drift.chi_square import chi_square_homogeneity
from keepwell.stats.drift.columns import CategoricalColumn, NumericColumn

__all__ = ["BinnedDistance", "SmoothedDistance", "binned_counts", "floor_shares"]

FloatArray = NDArray[np.float64]


def binned_counts(data: NumericColumn | CategoricalColumn
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Reference and current counts over the same cells."""
    if isinstance(data, NumericColumn):
        return data.reference_bin_counts, data.bin_counts
    return data.reference_counts, data.current_counts


def floor_shares(shares: FloatArray, epsilon: float) -> FloatArray:
    """Shares below ``epsilon`` raised to it, so that logarithms stay finite.

    Not renormalised. With ``epsilon = 1e-4`` this is Evidently's smoothing whenever no
    non-zero share is below 1e-4 (Evidently then replaces empty cells by 1e-4); shares both
    below ``epsilon`` cancel, so very rare categories add no noise.
    """
    return np.maximum(shares, epsilon)


class BinnedDistance(DriftTest):
    """Base of the distances between binned distributions (see the module docstring)."""

    kind: ClassVar[StatisticKind] = StatisticKind.DISTANCE
    applies_to: ClassVar[frozenset[ColumnKind]] = frozenset({"numeric", "categorical"})

    @abstractmethod
    def distance(self, p: FloatArray, q: FloatArray) -> float:
        """The distance between reference shares ``p`` and current shares ``q``."""

    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        ref_counts, cur_counts = binned_counts(data)
        p = ref_counts / ref_counts.sum()
        q = cur_counts / cur_counts.sum()
        value = self.distance(p, q)
        pvalue = None
        if self.alpha is not None:
            pvalue = chi_square_homogeneity(ref_counts, cur_counts)[2]
        return self.result(data, feature=feature, statistic=value, p_value=pvalue,
                           effect=value)


class SmoothedDistance(BinnedDistance):
    """A binned distance with logarithms of shares, floored at ``epsilon``."""

    epsilon: float

    def check_params(self) -> None:
        super().check_params()
        if not 0.0 < self.epsilon < 0.5:
            raise ValidationError(f"{self.name}: epsilon must be in (0, 0.5), not "
                                  f"{self.epsilon!r}.")
