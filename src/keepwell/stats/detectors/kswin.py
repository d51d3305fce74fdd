"""KSWIN, Kolmogorov-Smirnov windowing (Raab et al., 2020)."""

from __future__ import annotations

import collections
import functools
import itertools
import math
import random
import warnings
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from keepwell.stats.detectors.base import DriftDetector, _is_int, _is_real, _require

__all__ = ["KSWIN"]


class KSWIN(DriftDetector):
    r"""KSWIN: a two-sample Kolmogorov-Smirnov test between recent and older values.

    KSWIN keeps the last ``window_size`` values. Once the window is full, after every value it
    compares the newest ``stat_size`` values :math:`R` with ``stat_size`` values :math:`W` drawn
    without replacement from the older ``window_size - stat_size``, by the two-sample KS
    statistic :math:`D = \sup_v |F_R(v) - F_W(v)|` and its p-value (scipy's ``ks_2samp``,
    ``method="auto"``: exact for samples up to 10,000). A drift is :math:`p \le \alpha` and
    :math:`D > 0.1`; the window then restarts at the next value.

    Both samples have ``stat_size`` values, so :math:`D = k / r` for an integer count ``k`` and
    the p-value depends on ``k`` alone: keepwell computes ``k`` exactly with numpy and compares
    it with the smallest count that is significant, found once per ``(alpha, stat_size)`` from
    scipy. ``W`` is drawn as River draws it, with ``random.Random(seed).sample``, re-seeded at
    every reset, so with a seed the detections are River's exactly. (``D > 0.1`` is decided on
    the exact fraction ``k / r``, where River compares scipy's floating-point ``D``.) River's
    ``window`` argument, a pre-filled window, is not offered.

    Source: C. Raab, M. Heusinger, F.-M. Schleif, "Reactive Soft Prototype Computing for Concept
    Drift Streams", Neurocomputing 416 (2020) 340-351. Defaults are River's ``drift.KSWIN``.

    Parameters
    ----------
    alpha
        Significance level of the KS test, in (0, 1) (default 0.005); keep it small, as the test
        runs after every value.
    window_size
        Values kept (default 100).
    stat_size
        Values in each sample, at most half the window (default 30).
    seed
        Seed of the sampler; ``None`` draws a fresh one at each reset.

    Raises
    ------
    ValidationError
        A parameter is out of its range.

    Examples
    --------
    >>> import numpy as np
    >>> from keepwell.stats.detectors import KSWIN
    >>> rng = np.random.default_rng(7)
    >>> values = np.concatenate([rng.normal(0.0, 0.5, 2_000), rng.normal(1.0, 0.5, 2_000)])
    >>> KSWIN(alpha=0.0001, seed=42).update_many(values)
    array([2019])
    """

    name: ClassVar[str] = "kswin"

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int | None = None,
    ) -> None:
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        _require(_is_real(self.alpha) and 0 < self.alpha < 1,
                 f"KSWIN alpha must be in (0, 1); got {self.alpha!r}.")
        _require(_is_int(self.stat_size) and self.stat_size >= 1,
                 f"KSWIN stat_size must be an integer >= 1; got {self.stat_size!r}.")
        _require(_is_int(self.window_size) and self.window_size >= 2 * self.stat_size,
                 f"KSWIN window_size must be an integer >= 2 * stat_size "
                 f"({2 * self.stat_size}); got {self.window_size!r}.")
        _require(self.seed is None or _is_int(self.seed),
                 f"KSWIN seed must be an integer or None; got {self.seed!r}.")

    @property
    def statistic(self) -> float | None:
        """KS statistic :math:`D` of the last test, ``None`` before the first since a reset."""
        return None if self._count is None else self._count / self.stat_size

    @property
    def p_value(self) -> float | None:
        """p-value of the last test, ``None`` before the first since a reset."""
        return None if self._count is None else _p_value(self._count, self.stat_size)

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._window: collections.deque[float] = collections.deque(maxlen=self.window_size)
        self._rng = random.Random(self.seed)  # noqa: S311 - River's sampler, not for secrets
        self._count: int | None = None
        self._critical = _critical_count(float(self.alpha), self.stat_size)

    def _update_one(self, x: float) -> None:
        window = self._window
        window.append(x)
        if len(window) < self.window_size:
            return
        older = self.window_size - self.stat_size
        picks = _sample(self._rng, older, self.stat_size)
        drawn = np.array([[window[i] for i in picks]])
        recent = np.array([list(itertools.islice(window, older, self.window_size))])
        self._count = int(_ks_counts(drawn, recent)[0])
        self._drift_detected = self._count >= self._critical

    def _chunk_sizes(self) -> tuple[int, int]:
        return 256, 8192

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        size, stat, held = self.window_size, self.stat_size, len(self._window)
        values = np.concatenate((np.asarray(self._window, dtype=np.float64), chunk))
        first = max(size - held - 1, 0)  # the first value of the chunk that fills the window
        tested = np.arange(first, chunk.size)
        if tested.size:
            older = size - stat
            starts = (held + tested + 1 - size)[:, None]
            picks = np.array([_sample(self._rng, older, stat) for _ in range(tested.size)])
            counts = _ks_counts(values[starts + picks], values[starts + older + np.arange(stat)])
            hits = np.flatnonzero(counts >= self._critical)
            last = int(hits[0]) if hits.size else tested.size - 1
            self._count = int(counts[last])
            if hits.size:
                self._drift_detected = True
                self._keep(values[: held + int(tested[last]) + 1])
                return int(tested[last])
        self._keep(values)
        return -1

    def _keep(self, values: NDArray[np.float64]) -> None:
        """Make the window the last ``window_size`` of ``values``."""
        self._window.clear()
        self._window.extend(values[max(values.size - self.window_size, 0) :].tolist())


def _sample(rng: random.Random, population: int, k: int) -> list[int]:
    """``rng.sample(range(population), k)``: the same numbers, about three times faster.

    CPython's algorithm inlined (``random.Random.sample`` drawing with ``getrandbits``), so W
    is drawn from the same random numbers as River draws it; a test keeps the two equal.
    """
    getrandbits = rng.getrandbits
    result: list[int] = []
    append = result.append
    steps = _pool_steps(population, k)
    if steps:  # the pool method: a list of the population, drawn from without replacement
        pool = list(range(population))
        for bound, bits in steps:
            j = getrandbits(bits)
            while j >= bound:
                j = getrandbits(bits)
            append(pool[j])
            pool[j] = pool[bound - 1]
        return result
    bits = population.bit_length()  # the set method: redraw what was already drawn
    selected: set[int] = set()
    for _ in range(k):
        j = getrandbits(bits)
        while j >= population or j in selected:
            j = getrandbits(bits)
        selected.add(j)
        append(j)
    return result


@functools.lru_cache(maxsize=64)
def _pool_steps(population: int, k: int) -> tuple[tuple[int, int], ...]:
    """The (bound, bits) of each draw when ``sample`` uses its pool method, else empty."""
    setsize = 21
    if k > 5:
        setsize += 4 ** math.ceil(math.log(k * 3, 4))
    if population > setsize:
        return ()
    return tuple((bound, bound.bit_length()) for bound in range(population, population - k, -1))


def _ks_counts(first: NDArray[np.float64], second: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per row, ``r * D`` for two samples of ``r`` values: ``max_v |#first<=v - #second<=v|``."""
    r = first.shape[1]
    both = np.concatenate((first, second), axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    steps = np.where(order < r, 1, -1)
    running = np.cumsum(steps, axis=1)
    # Only the last of equal values closes a step of the empirical distribution functions.
    closes = np.ones_like(ordered, dtype=bool)
    closes[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    counts: NDArray[np.int64] = np.abs(np.where(closes, running, 0)).max(axis=1)
    return counts


@functools.lru_cache(maxsize=256)
def _p_value(count: int, stat_size: int) -> float:
    """scipy's ``ks_2samp`` p-value for ``D = count / stat_size`` between two equal samples."""
    first = np.arange(stat_size, dtype=np.float64)
    second = first + (count - 0.5) if count else first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(first, second, method="auto")
    return float(result.pvalue)


@functools.lru_cache(maxsize=256)
def _critical_count(alpha: float, stat_size: int) -> int:
    """The smallest ``k`` with p-value <= alpha and ``k / stat_size > 0.1`` (or r + 1)."""
    low, high = stat_size // 10 + 1, stat_size + 1  # k / r > 0.1 exactly
    while low < high:  # the p-value falls as k grows: binary search
        middle = (low + high) // 2
        if _p_value(middle, stat_size) <= alpha:
            high = middle
        else:
            low = middle + 1
    return low
