"""The Page-Hinkley test (Page, 1954; as in Mouss et al., 2004)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from keepwell.stats.detectors.base import DriftDetector, _is_int, _is_real, _require

__all__ = ["PageHinkley", "PageHinkleyMode"]

PageHinkleyMode = Literal["up", "down", "both"]


class PageHinkley(DriftDetector):
    r"""Page-Hinkley test: a cumulative sum of deviations from the running mean.

    With :math:`\bar x_t` the mean of the values so far, two faded cumulative sums follow the
    deviations, one for increases and one for decreases:

    .. math::

        U_t = \alpha U_{t-1} + (x_t - \bar x_t - \delta), \qquad
        L_t = \alpha L_{t-1} + (x_t - \bar x_t + \delta).

    Once ``min_instances`` values have been seen, a drift is an increase when
    :math:`U_t - \min_{s \le t} U_s > \lambda`, a decrease when
    :math:`\max_{s \le t} L_s - L_t > \lambda`; ``mode`` says which ones count. ``delta`` is the
    change too small to care about and ``threshold`` (:math:`\lambda`) trades delay against false
    alarms; ``alpha`` slightly below 1 forgets old deviations.

    Sources: E. S. Page, "Continuous Inspection Schemes", Biometrika 41 (1954) 100-115;
    H. Mouss, D. Mouss, N. Mouss, L. Sefouhi, "Test of Page-Hinckley, an approach for fault
    detection in an agro-alimentary production system", 5th Asian Control Conference, 2004.
    Defaults and rule are River's ``drift.PageHinkley``. keepwell's mean is the running sum over
    the count where River keeps a running mean, which can move a detection only on a tie at the
    last bit.

    Parameters
    ----------
    min_instances
        Values seen before a drift can be signalled (default 30).
    delta
        Magnitude of change to ignore, :math:`\delta` (default 0.005).
    threshold
        Detection threshold :math:`\lambda` (default 50.0).
    alpha
        Forgetting factor of the cumulative sums, in (0, 1] (default 0.9999).
    mode
        ``"up"``, ``"down"`` or ``"both"`` (default): which changes of the mean count.

    Raises
    ------
    ValidationError
        A parameter is out of its range.

    Examples
    --------
    >>> import numpy as np
    >>> from keepwell.stats.detectors import PageHinkley
    >>> rng = np.random.default_rng(7)
    >>> values = np.concatenate([rng.normal(0.0, 0.5, 2_000), rng.normal(1.0, 0.5, 2_000)])
    >>> PageHinkley().update_many(values)
    array([2005])
    """

    name: ClassVar[str] = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: PageHinkleyMode = "both",
    ) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        _require(_is_int(self.min_instances) and self.min_instances >= 1,
                 f"PageHinkley min_instances must be an integer >= 1; got "
                 f"{self.min_instances!r}.")
        _require(_is_real(self.delta) and self.delta >= 0,
                 f"PageHinkley delta must be a number >= 0; got {self.delta!r}.")
        _require(_is_real(self.threshold) and self.threshold > 0,
                 f"PageHinkley threshold must be a positive number; got {self.threshold!r}.")
        _require(_is_real(self.alpha) and 0 < self.alpha <= 1,
                 f"PageHinkley alpha must be in (0, 1]; got {self.alpha!r}.")
        _require(self.mode in ("up", "down", "both"),
                 f"PageHinkley mode must be 'up', 'down' or 'both'; got {self.mode!r}.")

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._n = 0
        self._total = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = math.inf
        self._max_decrease = -math.inf

    def _update_one(self, x: float) -> None:
        self._n += 1
        self._total += x
        deviation = x - self._total / self._n
        increase = self._sum_increase = self.alpha * self._sum_increase + (deviation - self.delta)
        decrease = self._sum_decrease = self.alpha * self._sum_decrease + (deviation + self.delta)
        if increase < self._min_increase:
            self._min_increase = increase
        if decrease > self._max_decrease:
            self._max_decrease = decrease
        if self._n >= self.min_instances:
            mode = self.mode
            self._drift_detected = (
                mode != "down" and increase - self._min_increase > self.threshold
            ) or (mode != "up" and self._max_decrease - decrease > self.threshold)

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        n = self._n + np.arange(1, chunk.size + 1)
        total = np.cumsum(np.concatenate(([self._total], chunk)))[1:]
        deviation = chunk - total / n
        # U_t = alpha * U_{t-1} + v_t, run in C by lfilter with the same two roundings a loop has.
        feedback = [1.0, -float(self.alpha)]
        increase = lfilter([1.0], feedback, deviation - self.delta,
                           zi=[self.alpha * self._sum_increase])[0]
        decrease = lfilter([1.0], feedback, deviation + self.delta,
                           zi=[self.alpha * self._sum_decrease])[0]
        min_increase = np.minimum.accumulate(np.concatenate(([self._min_increase], increase)))[1:]
        max_decrease = np.maximum.accumulate(np.concatenate(([self._max_decrease], decrease)))[1:]
        up = increase - min_increase > self.threshold
        down = max_decrease - decrease > self.threshold
        if self.mode == "up":
            drift = up
        elif self.mode == "down":
            drift = down
        else:
            drift = up | down
        drift &= n >= self.min_instances
        hits = np.flatnonzero(drift)
        last = int(hits[0]) if hits.size else chunk.size - 1
        self._n, self._total = int(n[last]), float(total[last])
        self._sum_increase, self._sum_decrease = float(increase[last]), float(decrease[last])
        self._min_increase = float(min_increase[last])
        self._max_decrease = float(max_decrease[last])
        if hits.size:
            self._drift_detected = True
            return last
        return -1
