"""The Kullback–Leibler divergence of the current distribution from the reference, over bins."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from keepwell.stats.drift.binned import FloatArray, SmoothedDistance, floor_shares

__all__ = ["KullbackLeibler", "kullback_leibler"]


def kullback_leibler(p: FloatArray, q: FloatArray, *, epsilon: float = 1e-4) -> float:
    """``KL(p ‖ q) = Σ p_i · ln(p_i / q_i)`` with shares floored at ``epsilon``.

    Examples
    --------
    >>> round(kullback_leibler(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 4)
    0.0204
    """
    p, q = floor_shares(p, epsilon), floor_shares(q, epsilon)
    return float(np.sum(p * np.log(p / q)))


class KullbackLeibler(SmoothedDistance):
    """Kullback–Leibler divergence ``KL(reference ‖ current)`` over the reference's bins.

    ``KL = Σ_i p_i · ln(p_i / q_i)`` in nats, ``p`` the reference and ``q`` the current share
    of each cell (quantile bins of a numeric column, or its values when few, categories of a
    categorical one; see :mod:`keepwell.stats.drift.binned`), both floored at ``epsilon`` =
    1e-4 so that a cell the current data left empty adds a large but finite term. The
    direction is Evidently's (``scipy.stats.entropy(reference, current)``): the information
    lost describing the reference by the current distribution, so it grows when current data
    abandons regions the reference covered.

    The default threshold 0.05 is the KL of a normal variable shifted by a third of a
    standard deviation, over deciles (Evidently's 0.1 needs almost half). The significance
    gate is Pearson's χ² over the same cells (``2·n_e·KL`` has the same χ²(k - 1) limit).

    Source: Kullback, S. and Leibler, R. A. (1951), Annals of Mathematical Statistics 22(1);
    ``scipy.stats.entropy``; Evidently, ``evidently/calculations/stattests/kl_div.py``.

    Parameters
    ----------
    alpha : float or None, default 0.05
        Level of the χ² significance gate; ``None`` judges by KL alone.
    threshold : float, default 0.05
        Smallest divergence (nats) that counts as drift.
    epsilon : float, default 1e-4
        Floor on every share before taking logarithms.

    Returns
    -------
    DriftResult
        ``statistic`` and ``effect`` are the divergence.

    Raises
    ------
    ValidationError
        The current values are empty or all missing, or ``epsilon`` is not in (0, 0.5).

    Examples
    --------
    >>> reference = ["a"] * 600 + ["b"] * 400
    >>> KullbackLeibler().compare(reference, ["a"] * 60 + ["b"] * 40).drifted
    False
    >>> result = KullbackLeibler().compare(reference, ["a"] * 300 + ["b"] * 700)
    >>> result.drifted, round(result.statistic, 3)
    (True, 0.192)
    """

    name: ClassVar[str] = "kl_div"
    effect_name: ClassVar[str] = "kl_divergence"

    def __init__(self, alpha: float | None = 0.05, threshold: float = 0.05,
                 epsilon: float = 1e-4) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.epsilon = epsilon

    def distance(self, p: FloatArray, q: FloatArray) -> float:
        return kullback_leibler(p, q, epsilon=self.epsilon)
