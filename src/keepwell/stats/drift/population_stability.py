"""The Population Stability Index over the reference's quantile bins."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from keepwell.stats.drift.binned import FloatArray, SmoothedDistance, floor_shares

__all__ = ["PopulationStabilityIndex", "population_stability_index"]


def population_stability_index(p: FloatArray, q: FloatArray, *, epsilon: float = 1e-4) -> float:
    """``PSI = Σ (q_i - p_i) · ln(q_i / p_i)`` with shares floored at ``epsilon``.

    Examples
    --------
    >>> round(population_stability_index(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 4)
    0.0405
    """
    p, q = floor_shares(p, epsilon), floor_shares(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


class PopulationStabilityIndex(SmoothedDistance):
    """Population Stability Index: the symmetrised Kullback–Leibler divergence over bins.

    ``PSI = Σ_i (q_i - p_i) · ln(q_i / p_i)``, ``p`` the reference share and ``q`` the
    current share of cell ``i``: for a numeric column the profile's quantile bins (deciles by
    default; the outer two open-ended) or, when it has at most 20 values, one cell per value;
    for a categorical one the reference categories; in both of the last two, one more cell
    for all other values (:mod:`keepwell.stats.drift.binned`). Shares are floored at
    ``epsilon`` (1e-4) so that an empty cell adds a large but finite term; this is
    Evidently's smoothing when no non-zero share is below 1e-4.

    The default threshold 0.1 is the credit-scoring convention ("below 0.1, no significant
    change"; Siddiqi 2006) and Evidently's; over deciles it is the PSI of a normal variable
    shifted by a third of a standard deviation. The significance gate is Pearson's χ² over
    the same cells (``n_e·PSI`` has the same χ²(k - 1) limit; Yurdakul 2018).

    Source: Siddiqi, N. (2006), *Credit Risk Scorecards*, Wiley, ch. 8; Yurdakul, B. (2018),
    "Statistical properties of population stability index"; Evidently,
    ``evidently/calculations/stattests/psi.py`` (which bins numeric columns by Sturges' rule
    over both samples instead of reference quantiles).

    Parameters
    ----------
    alpha : float or None, default 0.05
        Level of the χ² significance gate; ``None`` judges by PSI alone.
    threshold : float, default 0.1
        Smallest PSI that counts as drift.
    epsilon : float, default 1e-4
        Floor on every share before taking logarithms.

    Returns
    -------
    DriftResult
        ``statistic`` and ``effect`` are the PSI.

    Raises
    ------
    ValidationError
        The current values are empty or all missing, or ``epsilon`` is not in (0, 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=5_000)
    >>> PopulationStabilityIndex().compare(reference, rng.normal(size=5_000)).drifted
    False
    >>> result = PopulationStabilityIndex().compare(reference, rng.normal(0.5, 1, 5_000))
    >>> result.drifted, round(result.statistic, 2)
    (True, 0.25)
    """

    name: ClassVar[str] = "psi"
    effect_name: ClassVar[str] = "psi"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.1,
                 epsilon: float = 1e-4) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.epsilon = epsilon

    def distance(self, p: FloatArray, q: FloatArray) -> float:
        return population_stability_index(p, q, epsilon=self.epsilon)
