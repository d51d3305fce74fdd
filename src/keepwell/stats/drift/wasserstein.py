"""The Wasserstein (earth mover's) distance, normalised by the reference standard deviation."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keepwell.stats.drift.base import ColumnKind, DriftResult, DriftTest, StatisticKind
from keepwell.stats.drift.columns import CategoricalColumn, NumericColumn
from keepwell.stats.drift.kolmogorov_smirnov import ks_test

__all__ = ["Wasserstein", "wasserstein_distance"]

FloatArray = NDArray[np.float64]
MIN_NORM = 0.001  # Evidently's floor on the normalising standard deviation


def wasserstein_distance(data: NumericColumn) -> float:
    """``W1 = ∫ |F_ref(x) - F_cur(x)| dx``, in the column's units.

    From raw reference values: exact, scipy's algorithm over the pooled sorted values.

    From a profile: in each cell between grid values the integral needs only the cell's
    reference mass, the mean of the reference values in it, and the current values' count
    and sum there (``∫_cell F dx = width·F(lo) + mass·(hi - mean)``), so it is exact wherever
    the two CDFs do not cross inside a cell (a crossing only makes the result smaller). The
    profile does not store the cell means: interior cells take their midpoint (the grid's
    linear interpolation), and the two outermost cells share, in proportion to width × mass,
    whatever the profile's exact mean says the midpoints missed. That one equation repairs
    one-sided long tails, where midpoints are far off (lognormal at 100,000 rows: error
    0.26 σ by midpoints, 0.001 σ with it); on the benchmark's five families and on integer
    data the error stays within 0.02 σ. Heavy tails on both sides (Student's t, 3 degrees of
    freedom) can still be off by 0.2 σ: storing the cell means in the profile would make the
    reference side exact.
    """
    ref, y = data.reference, data.values
    if ref.sample is not None:
        return _exact(ref.sample, y)
    u = ref.values
    shift = ref.mean if np.isfinite(ref.mean) else 0.0
    prefix = np.concatenate(([0.0], np.cumsum(y - shift)))
    at, below = data.positions
    ref_at, ref_below = data.reference_cdf
    cur_at, _ = data.current_cdf
    n = data.n
    # Left of the grid (F_ref = 0) and right of it (F_ref = 1).
    left = (below[0] * (u[0] - shift) - prefix[below[0]]) / n
    right = ((prefix[n] - prefix[at[-1]]) - (n - at[-1]) * (u[-1] - shift)) / n
    # Cell j lies between u[j-1] and u[j]; it holds the current values below[j] .. at[j-1].
    width = np.diff(u)
    mass = np.maximum(ref_below[1:] - ref_at[:-1], 0.0)
    means = _cell_means(u, width, mass, ref_at - ref_below, ref.mean)
    count = below[1:] - at[:-1]
    total = prefix[below[1:]] - prefix[at[:-1]]
    current_area = width * cur_at[:-1] + (count * (u[1:] - shift) - total) / n
    reference_area = width * ref_at[:-1] + mass * (u[1:] - means)
    return float(left + right + np.abs(reference_area - current_area).sum())


def _cell_means(u: FloatArray, width: FloatArray, mass: FloatArray, atoms: FloatArray,
                mean: float) -> FloatArray:
    """Midpoints, with the outermost two cells moved so the reference mean comes out exact."""
    means = (u[:-1] + u[1:]) / 2
    weight = np.zeros_like(width)
    if weight.size and np.isfinite(mean):
        weight[0] += width[0] * mass[0]
        weight[-1] += width[-1] * mass[-1]
    if weight.sum() > 0:
        gap = mean - (np.sum(atoms * u) + np.sum(mass * means))
        moved = np.divide(gap * weight / weight.sum(), mass, out=np.zeros_like(mass),
                          where=mass > 0)
        means = np.clip(means + moved, u[:-1], u[1:])
    return means


def _exact(reference: np.ndarray, current: np.ndarray) -> float:
    pooled = np.sort(np.concatenate((reference, current)))
    deltas = np.diff(pooled)
    ref_cdf = np.searchsorted(reference, pooled[:-1], side="right") / reference.size
    cur_cdf = np.searchsorted(current, pooled[:-1], side="right") / current.size
    return float(np.sum(np.abs(ref_cdf - cur_cdf) * deltas))


class Wasserstein(DriftTest):
    """Normalised Wasserstein distance: how far, in reference standard deviations, mass moved.

    ``W = W1(F_ref, F_cur) / max(σ_ref, 0.001)`` with ``W1 = ∫ |F_ref - F_cur| dx`` and
    ``σ_ref`` the reference standard deviation with ddof = 0 — Evidently's ``wasserstein``
    drift test exactly. A shift of the whole distribution by ``k`` standard deviations gives
    ``W = k``; the default threshold 0.25 is a quarter of a standard deviation.

    W has no distribution-free null distribution, so its significance gate is the
    Kolmogorov–Smirnov test on the same values (:class:`KolmogorovSmirnov`): the p-value
    reported is KS's. From a profile, see :func:`wasserstein_distance` for the accuracy.

    Source: Vaserstein, L. N. (1969); Villani, C. (2009), *Optimal Transport*, ch. 6;
    ``scipy.stats.wasserstein_distance``; Evidently,
    ``evidently/calculations/stattests/wasserstein_distance_norm.py``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Level of the KS significance gate; ``None`` judges by W alone (as Evidently does).
    threshold : float, default 0.25
        Smallest normalised distance that counts as drift.

    Returns
    -------
    DriftResult
        ``statistic`` and ``effect`` are the normalised distance.

    Raises
    ------
    ValidationError
        The column is not numeric, or the current values are empty or all missing.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(10, 2, size=5_000)
    >>> result = Wasserstein().compare(reference, reference + 1.0)   # half a std
    >>> result.drifted, round(result.statistic, 2)
    (True, 0.5)
    """

    name: ClassVar[str] = "wasserstein"
    kind: ClassVar[StatisticKind] = StatisticKind.DISTANCE
    applies_to: ClassVar[frozenset[ColumnKind]] = frozenset({"numeric"})
    effect_name: ClassVar[str] = "wasserstein_normed"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.25) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        assert isinstance(data, NumericColumn)  # evaluate() checked the column's kind
        norm = max(data.reference.std_population, MIN_NORM)
        distance = wasserstein_distance(data) / norm
        p = None if self.alpha is None else ks_test(data)[1]
        return self.result(data, feature=feature, statistic=distance, p_value=p,
                           effect=distance)
