"""The Hellinger distance between binned distributions."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from keepwell.stats.drift.binned import BinnedDistance, FloatArray

__all__ = ["Hellinger", "hellinger_distance"]


def hellinger_distance(p: FloatArray, q: FloatArray) -> float:
    """``H = sqrt(1 - Σ sqrt(p_i · q_i))``, between 0 and 1.

    Examples
    --------
    >>> round(hellinger_distance(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 4)
    0.0712
    """
    affinity = float(np.sum(np.sqrt(p * q)))
    return math.sqrt(min(max(1.0 - affinity, 0.0), 1.0))


class Hellinger(BinnedDistance):
    """Hellinger distance: how little the two distributions' square roots overlap.

    ``H = sqrt(1 - Σ_i sqrt(p_i · q_i)) = ‖√p - √q‖₂ / √2``, between 0 (identical) and 1
    (disjoint), ``p`` and ``q`` the reference and current shares over the reference's bins or
    categories (:mod:`keepwell.stats.drift.binned`); empty cells need no smoothing.

    The default threshold 0.1 is Evidently's; over deciles it is the Hellinger distance of a
    normal variable shifted by 0.29 standard deviations. The significance gate is Pearson's
    χ² over the same cells (``8·n_e·H²`` has the same χ²(k - 1) limit).

    Source: Hellinger, E. (1909), Journal für die reine und angewandte Mathematik 136;
    Le Cam, L. and Yang, G. L. (2000), *Asymptotics in Statistics*, ch. 3; Evidently,
    ``evidently/calculations/stattests/hellinger_distance.py``.

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
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> reference = rng.exponential(size=5_000)
    >>> Hellinger().compare(reference, rng.exponential(size=5_000)).drifted
    False
    >>> result = Hellinger().compare(reference, rng.exponential(1.5, size=5_000))
    >>> result.drifted, round(result.statistic, 2)
    (True, 0.13)
    """

    name: ClassVar[str] = "hellinger"
    effect_name: ClassVar[str] = "hellinger_distance"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.1) -> None:
        self.alpha = alpha
        self.threshold = threshold

    def distance(self, p: FloatArray, q: FloatArray) -> float:
        return hellinger_distance(p, q)
