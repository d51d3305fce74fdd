"""ADWIN, adaptive windowing (Bifet & Gavaldà, 2007)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keepwell.stats.detectors._adwin_buckets import (
    bucket_lists_at,
    bucket_table,
    cut_found,
    level_sums,
)
from keepwell.stats.detectors.base import DriftDetector, _is_int, _is_real, _require

__all__ = ["ADWIN"]


class ADWIN(DriftDetector):
    r"""ADWIN: drop the old part of a window whose mean differs from the recent part's.

    ADWIN keeps the window of values since the last detection, compressed into an exponential
    histogram (ADWIN2): buckets of :math:`2^i` values, at most ``max_buckets`` of each size,
    the two oldest of a size merged when one more arrives. Every ``clock`` values, once the
    window is longer than ``grace_period``, it tries each bucket boundary as a split of the
    window :math:`W` (width :math:`n`, variance :math:`\sigma^2_W`) into an older part
    :math:`W_0` and a newer part :math:`W_1` (widths :math:`n_0, n_1 \ge` ``min_window_length``)
    and detects a drift when the means differ by more than

    .. math::

        \epsilon = \sqrt{2 m \sigma^2_W \delta'} + \tfrac{2}{3} \delta' m, \quad
        \delta' = \ln\frac{2 \ln n}{\delta}, \quad
        m = \frac{1}{n_0 - \ell + 1} + \frac{1}{n_1 - \ell + 1},

    with :math:`\ell` the ``min_window_length``. The window then restarts at the next value.

    Source: A. Bifet, R. Gavaldà, "Learning from Time-Changing Data with Adaptive Windowing",
    SIAM International Conference on Data Mining, 2007, pp. 443-448. Defaults, bucket rules,
    clock and the bound are River's ``drift.ADWIN`` (its Rust core), reproduced operation for
    operation, so the detections are River's exactly. After a detection River also drops old
    buckets from the window, which keepwell skips: the window restarts at the next value either
    way.

    Parameters
    ----------
    delta
        Confidence :math:`\delta` of the bound, in (0, 1) (default 0.002). Smaller is more
        conservative.
    clock
        Test for a change every ``clock`` values (default 32; 1 tests after every value).
    max_buckets
        Buckets of each size kept before two are merged (default 5).
    min_window_length
        Smallest :math:`n_0` and :math:`n_1` tried, :math:`\ell` above (default 5).
    grace_period
        Values seen before the first test (default 10).

    Raises
    ------
    ValidationError
        A parameter is out of its range.

    Examples
    --------
    >>> import numpy as np
    >>> from keepwell.stats.detectors import ADWIN
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(2_000) < 0.1, rng.random(2_000) < 0.3])
    >>> ADWIN().update_many(errors)
    array([2079])
    """

    name: ClassVar[str] = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        _require(_is_real(self.delta) and 0 < self.delta < 1,
                 f"ADWIN delta must be in (0, 1); got {self.delta!r}.")
        for label, low in (("clock", 1), ("max_buckets", 1), ("min_window_length", 1),
                           ("grace_period", 0)):
            value = getattr(self, label)
            _require(_is_int(value) and value >= low,
                     f"ADWIN {label} must be an integer >= {low}; got {value!r}.")

    @property
    def width(self) -> int:
        """Values in the current window (since the last detection or reset)."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the current window (0.0 when it is empty)."""
        return self._total / self._width if self._width else 0.0

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._levels: list[list[float]] = [[]]  # level i: totals of 2**i values, oldest first
        self._width = 0
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations from the window's mean

    def _update_one(self, x: float) -> None:
        width = self._width + 1
        if width > 1:
            step = x - self._total / (width - 1)
            self._variance += (width - 1) * step * step / width
        self._total += x
        self._width = width
        levels = self._levels
        levels[0].append(x)
        level = 0
        while len(levels[level]) == self.max_buckets + 1:
            buckets = levels[level]
            merged = buckets[0] + buckets[1]
            del buckets[:2]
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append(merged)
            level += 1
        if width % self.clock == 0 and width > self.grace_period:
            self._drift_detected = self._cut_found()

    def _cut_found(self) -> bool:
        """Try every bucket boundary, oldest first, as River does."""
        width = float(self._width)
        least = float(self.min_window_length)
        if width < 2.0 * least:
            return False
        scaled = self._variance / width
        spread = math.log(2.0 * math.log(width) / self.delta)
        n0, n1, u0, u1 = 0.0, width, 0.0, self._total
        for level in range(len(self._levels) - 1, -1, -1):
            size = float(1 << level)
            for total in self._levels[level]:
                n0 += size
                n1 -= size
                u0 += total
                u1 -= total
                if n0 >= least and n1 >= least:
                    m = 1.0 / (n0 - least + 1.0) + 1.0 / (n1 - least + 1.0)
                    bound = math.sqrt(2.0 * m * scaled * spread) + 2.0 / 3.0 * spread * m
                    if abs(u0 / n0 - u1 / n1) > bound:
                        return True
        return False

    def _chunk_sizes(self) -> tuple[int, int]:
        checks = max(16, (1 << 19) // (32 * self.max_buckets))
        return self.clock * min(32, checks), self.clock * checks

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        width = self._width + np.arange(1, chunk.size + 1)
        total = np.cumsum(np.concatenate(([self._total], chunk)))
        before = (width - 1).astype(np.float64)
        grown = before > 0
        step = chunk - total[:-1] / np.where(grown, before, 1.0)
        added = np.where(grown, before * step * step / width, 0.0)
        variance = np.cumsum(np.concatenate(([self._variance], added)))[1:]
        total = total[1:]
        levels = level_sums(self._levels, chunk, self._width)
        checks = np.flatnonzero((width % self.clock == 0) & (width > self.grace_period))
        hit = -1
        # 512 tests at a time keep numpy's temporaries in cache.
        for begin in range(0, checks.size, 512):
            at = checks[begin : begin + 512]
            cuts = np.flatnonzero(cut_found(
                bucket_table(levels, width[at], self.max_buckets),
                width[at], total[at], variance[at],
                delta=float(self.delta), least=float(self.min_window_length),
            ))
            if cuts.size:
                hit = int(at[cuts[0]])
                break
        last = hit if hit >= 0 else chunk.size - 1
        self._width = int(width[last])
        self._total, self._variance = float(total[last]), float(variance[last])
        self._levels = bucket_lists_at(levels, self._width, self.max_buckets)
        if hit >= 0:
            self._drift_detected = True
        return hit
