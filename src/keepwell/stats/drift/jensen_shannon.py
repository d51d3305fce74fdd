"""The Jensen–Shannon distance between binned distributions."""

from __future__ import annotations

import math
from typing import ClassVar

from scipy import special

from keepwell.stats.drift.binned import BinnedDistance, FloatArray

__all__ = ["JensenShannon", "jensen_shannon_distance"]


def jensen_shannon_distance(p: FloatArray, q: FloatArray) -> float:
    """``sqrt((KL(p ‖ m) + KL(q ‖ m)) / 2)``, ``m = (p + q) / 2``, logarithms base 2.

    Examples
    --------
    >>> import numpy as np
    >>> round(jensen_shannon_distance(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 4)
    0.0854
    """
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2
    return math.sqrt(max(float(divergence), 0.0) / math.log(2))


class JensenShannon(BinnedDistance):
    """Jensen–Shannon distance: the square root of the symmetric, bounded KL divergence.

    ``JS = sqrt((KL(p ‖ m) + KL(q ‖ m)) / 2)`` with ``m = (p + q) / 2`` and base-2
    logarithms, so ``0 <= JS <= 1``; ``p`` and ``q`` are the reference and current shares
    over the reference's bins or categories (:mod:`keepwell.stats.drift.binned`). Empty
    cells need no smoothing. Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

    The default threshold 0.1 is Evidently's and NannyML's (both base 2); over deciles it is
    the JS distance of a normal variable shifted by a quarter of a standard deviation. The
    significance gate is Pearson's χ² over the same cells (``8·n_e·JS²`` (nats) has the same
    χ²(k - 1) limit).

    Source: Lin, J. (1991), IEEE Transactions on Information Theory 37(1); Endres, D. M. and
    Schindelin, J. E. (2003), IEEE Transactions on Information Theory 49(7) (the square root
    is a metric); ``scipy.spatial.distance.jensenshannon``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Level of the χ² significance gate; ``None`` judges by the distance alone.
    threshold : float, default 0.1
        Smallest distance that counts as drift.

    Returns
    -------
    DriftResult
        ``statistic`` and ``effect`` are the distance.

    Raises
    ------
    ValidationError
        The current values are empty or all missing.

    Examples
    --------
    >>> reference = ["a"] * 600 + ["b"] * 400
    >>> JensenShannon().compare(reference, ["a"] * 59 + ["b"] * 41).drifted
    False
    >>> result = JensenShannon().compare(reference, ["a"] * 400 + ["b"] * 600)
    >>> result.drifted, round(result.statistic, 3)
    (True, 0.17)
    """

    name: ClassVar[str] = "jensenshannon"
    effect_name: ClassVar[str] = "js_distance"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.1) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def distance(self, p: FloatArray, q: FloatArray) -> float:
        return jensen_shannon_distance(p, q)
