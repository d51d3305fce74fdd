"""DDM, the Drift Detection Method (Gama et al., 2004)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keepwell.stats.detectors.base import InputKind, WarningDetector, _is_int, _is_real, _require

__all__ = ["DDM"]


class DDM(WarningDetector):
    r"""Drift Detection Method: the error rate rising above its best level by a few deviations.

    After ``n`` values of an error stream (1 wrong, 0 right) with ``k`` errors, the error rate
    is :math:`p_n = k / n` with standard deviation :math:`s_n = \sqrt{p_n (1 - p_n) / n}`.
    Once ``n > warm_start``, DDM remembers :math:`p_{min}, s_{min}` at the smallest
    :math:`p_n + s_n` seen (the latest one on ties) and signals

    * a warning while :math:`p_n + s_n > p_{min} + w \cdot s_{min}`,
    * a drift when :math:`p_n + s_n > p_{min} + d \cdot s_{min}`,

    with ``w = warning_threshold`` and ``d = drift_threshold`` (2 and 3 in the paper: about 95%
    and 99% one-sided confidence). It only looks for *increases* of the error rate.

    Source: J. Gama, P. Medas, G. Castillo, P. Rodrigues, "Learning with Drift Detection",
    SBIA 2004, LNCS 3171, pp. 286-295. Defaults and detection rule are River's
    ``drift.binary.DDM``; keepwell computes :math:`p_n` as ``k / n`` exactly where River keeps
    a running mean, which can move a detection only on a tie at the last bit.

    Parameters
    ----------
    warm_start
        Values seen before any warning or drift can be signalled (River's default 30).
    warning_threshold
        ``w`` above, in standard deviations (default 2.0).
    drift_threshold
        ``d`` above, in standard deviations (default 3.0).

    Raises
    ------
    ValidationError
        ``warm_start`` is not a non-negative integer, or a threshold is not a positive number.

    Examples
    --------
    >>> import numpy as np
    >>> from keepwell.stats.detectors import DDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(2_000) < 0.1, rng.random(2_000) < 0.3])
    >>> DDM().update_many(errors)
    array([2226])
    >>> ddm = DDM()
    >>> for i, error in enumerate(errors):
    ...     ddm.update(error)
    ...     if ddm.drift_detected:
    ...         print(f"drift at {i}")
    drift at 2226
    """

    name: ClassVar[str] = "ddm"
    input_kind: ClassVar[InputKind] = "binary"

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        _require(_is_int(self.warm_start) and self.warm_start >= 0,
                 f"DDM warm_start must be an integer >= 0; got {self.warm_start!r}.")
        for label in ("warning_threshold", "drift_threshold"):
            value = getattr(self, label)
            _require(_is_real(value) and value > 0,
                     f"DDM {label} must be a positive number; got {value!r}.")

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._warning_detected = False
        self._n = 0
        self._errors = 0.0
        self._p_min = math.inf
        self._s_min = math.inf
        self._ps_min = math.inf

    def _update_one(self, x: float) -> None:
        self._n += 1
        self._errors += x
        n = self._n
        p = self._errors / n
        s = math.sqrt(p * (1.0 - p) / n)
        if n > self.warm_start:
            ps = p + s
            if ps <= self._ps_min:
                self._p_min, self._s_min, self._ps_min = p, s, ps
            self._warning_detected = ps > self._p_min + self.warning_threshold * self._s_min
            if ps > self._p_min + self.drift_threshold * self._s_min:
                self._drift_detected = True
                self._warning_detected = False

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        n = self._n + np.arange(1, chunk.size + 1)
        errors = np.cumsum(np.concatenate(([self._errors], chunk)))[1:]
        # Before warm-up ends only the counts move.
        first = min(max(self.warm_start - self._n, 0), chunk.size)
        if first == chunk.size:
            self._n, self._errors = int(n[-1]), float(errors[-1])
            return -1
        p = errors[first:] / n[first:]
        s = np.sqrt(p * (1.0 - p) / n[first:])
        ps = p + s
        # The minimum so far, before each value; a value at or below it becomes the new minimum.
        running = np.minimum.accumulate(np.concatenate(([self._ps_min], ps)))
        is_min = ps <= running[:-1]
        where = np.maximum.accumulate(np.where(is_min, np.arange(ps.size), -1))
        p_min = np.where(where >= 0, p[where], self._p_min)
        s_min = np.where(where >= 0, s[where], self._s_min)
        drift = ps > p_min + self.drift_threshold * s_min
        hits = np.flatnonzero(drift)
        last = int(hits[0]) if hits.size else ps.size - 1
        self._n, self._errors = int(n[first + last]), float(errors[first + last])
        self._p_min, self._s_min = float(p_min[last]), float(s_min[last])
        self._ps_min = float(running[last + 1])
        if hits.size:
            self._drift_detected = True
            self._warning_detected = False
            return first + last
        self._warning_detected = bool(ps[last] > p_min[last] + self.warning_threshold * s_min[last])
        return -1
