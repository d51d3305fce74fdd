"""EDDM, the Early Drift Detection Method (Baena-García et al., 2006)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keepwell.stats.detectors.base import InputKind, WarningDetector, _is_int, _is_real, _require

__all__ = ["EDDM"]


class EDDM(WarningDetector):
    r"""Early Drift Detection Method: errors arriving closer together than they used to.

    EDDM follows the distance (in values) between consecutive errors of an error stream. After
    the ``j``-th error, with :math:`p'_j` the mean and :math:`s'_j` the standard deviation
    (``ddof=1``) of the ``j`` distances, it keeps the largest :math:`p'_j + 2 s'_j` seen,
    :math:`p'_{max} + 2 s'_{max}`, and signals

    * a warning when :math:`(p'_j + 2 s'_j) / (p'_{max} + 2 s'_{max}) < \alpha`,
    * a drift when :math:`(p'_j + 2 s'_j) / (p'_{max} + 2 s'_{max}) < \beta`.

    As in River, the statistics are only looked at once more than ``warm_start`` values have
    been seen, the ratio only once more than ``warm_start`` errors have, and an error that sets a
    new maximum leaves the warning as it was. Gradual drifts, where the error rate creeps up, are
    what it was designed for; on a stationary stream it raises far more false alarms than DDM.

    Source: M. Baena-García, J. del Campo-Ávila, R. Fidalgo, A. Bifet, R. Gavaldà,
    R. Morales-Bueno, "Early Drift Detection Method", 4th International Workshop on Knowledge
    Discovery from Data Streams, 2006. Defaults and rule are River's ``drift.binary.EDDM``;
    keepwell computes the mean and variance from exact sums of the distances where River uses
    Welford's running update, which can move a detection only on a tie at the last bit.

    Parameters
    ----------
    warm_start
        Values, and errors, to see before a warning or drift (River's default 30).
    alpha
        Warning level, in (0, 1] (default 0.95).
    beta
        Drift level, in (0, alpha] (default 0.9). Smaller is more conservative.

    Raises
    ------
    ValidationError
        ``warm_start`` is not a non-negative integer, or not ``0 < beta <= alpha <= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from keepwell.stats.detectors import EDDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(2_000) < 0.1, rng.random(2_000) < 0.3])
    >>> EDDM(alpha=0.8, beta=0.75).update_many(errors)
    array([2748, 2969])
    """

    name: ClassVar[str] = "eddm"
    input_kind: ClassVar[InputKind] = "binary"

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        _require(_is_int(self.warm_start) and self.warm_start >= 0,
                 f"EDDM warm_start must be an integer >= 0; got {self.warm_start!r}.")
        _require(_is_real(self.alpha) and _is_real(self.beta)
                 and 0 < self.beta <= self.alpha <= 1,
                 f"EDDM needs 0 < beta <= alpha <= 1; got alpha={self.alpha!r}, "
                 f"beta={self.beta!r}.")

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._warning_detected = False
        self._n = 0
        self._last_error = 0
        self._n_errors = 0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._p2s_max = -1.0

    def _update_one(self, x: float) -> None:
        self._n += 1
        if x != 1.0:
            return
        self._n_errors += 1
        distance = float(self._n - self._last_error)
        self._last_error = self._n
        self._sum += distance
        self._sum_sq += distance * distance
        if self._n <= self.warm_start:
            return
        j = self._n_errors
        mean = self._sum / j
        variance = max((self._sum_sq - self._sum * mean) / (j - 1), 0.0) if j > 1 else 0.0
        p2s = mean + 2.0 * math.sqrt(variance)
        if p2s > self._p2s_max:
            self._p2s_max = p2s
        elif j > self.warm_start:
            level = p2s / self._p2s_max
            if level < self.beta:
                self._drift_detected = True
            else:
                self._warning_detected = level < self.alpha

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        at = np.flatnonzero(chunk == 1.0)
        if at.size == 0:
            self._n += chunk.size
            return -1
        n = self._n + at + 1  # the count when each error arrives
        distance = np.diff(n, prepend=self._last_error).astype(np.float64)
        j = self._n_errors + np.arange(1, at.size + 1)
        sums = np.cumsum(np.concatenate(([self._sum], distance)))[1:]
        sums_sq = np.cumsum(np.concatenate(([self._sum_sq], distance * distance)))[1:]
        mean = sums / j
        several = j > 1
        variance = np.where(
            several, np.maximum((sums_sq - sums * mean) / np.where(several, j - 1, 1), 0.0), 0.0
        )
        p2s = mean + 2.0 * np.sqrt(variance)
        active = n > self.warm_start
        before = np.maximum.accumulate(
            np.concatenate(([self._p2s_max], np.where(active, p2s, -np.inf)))
        )
        new_max = active & (p2s > before[:-1])
        compared = active & ~new_max & (j > self.warm_start)
        level = p2s / np.where(compared, before[:-1], 1.0)
        drift = compared & (level < self.beta)
        hits = np.flatnonzero(drift)
        last = int(hits[0]) if hits.size else at.size - 1
        # The warning is set or cleared by the last compared error that was not a drift.
        touched = np.flatnonzero((compared & ~drift)[: last + 1])
        if touched.size:
            self._warning_detected = bool(level[touched[-1]] < self.alpha)
        self._n = int(n[last]) if hits.size else self._n + chunk.size
        self._last_error = int(n[last])
        self._n_errors = int(j[last])
        self._sum, self._sum_sq = float(sums[last]), float(sums_sq[last])
        self._p2s_max = float(before[last + 1])
        if hits.size:
            self._drift_detected = True
            return int(at[last])
        return -1
