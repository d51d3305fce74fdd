"""Isotonic calibration of classifier scores, and NannyML's test of whether it helps.

CBPE reads a class's score as the probability that the label is that class, so it first maps
scores to calibrated probabilities with an isotonic regression fitted on the reference (labels
and scores). Whether to calibrate at all is decided as NannyML 0.13.1 does
(``nannyml/calibration.py``, ``needs_calibration``): over ten stratified 90/10 splits of the
reference (scikit-learn's ``StratifiedShuffleSplit(10, test_size=0.1, random_state=42)``,
rebuilt here on numpy's ``RandomState`` so the same rows are drawn), fit on each training part,
calibrate its test part, pool the test parts, and calibrate only if the expected calibration
error over ten equal-count bins is lower after than before. Scores that already separate the
classes almost perfectly (ROC AUC > 0.999), or a reference with one class, are not calibrated.

The fitted map is kept as its breakpoints (scikit-learn's ``X_thresholds_`` and
``y_thresholds_``) and applied with ``np.interp``, which clips outside them as scikit-learn's
``out_of_bounds="clip"`` does, so it serialises to JSON without pickle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import isotonic_regression

__all__ = ["IsotonicCalibrator", "expected_calibration_error", "fit_calibrator",
           "needs_calibration", "stratified_splits"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: scikit-learn's ``_make_unique`` merges scores closer than this to the first of their group.
_RESOLUTION = float(np.finfo(np.float64).resolution)


class IsotonicCalibrator:
    """A monotone map from scores to probabilities, kept as its breakpoints.

    ``x`` holds increasing scores and ``y`` the calibrated probability at each; a score between
    two breakpoints is interpolated linearly, one outside them takes the nearest end's value.

    Examples
    --------
    >>> calibrator = IsotonicCalibrator.fit(np.array([0.1, 0.2, 0.3, 0.4]),
    ...                                     np.array([0, 1, 0, 1]))
    >>> calibrator.y.tolist()
    [0.0, 0.5, 0.5, 1.0]
    >>> calibrator(np.array([0.0, 0.25, 0.9])).tolist()
    [0.0, 0.5, 1.0]
    """

    __slots__ = ("x", "y")

    def __init__(self, x: FloatArray, y: FloatArray) -> None:
        self.x = x
        self.y = y

    @classmethod
    def fit(cls, scores: FloatArray, labels: IntArray) -> IsotonicCalibrator:
        """Fit on scores and 0/1 labels (scikit-learn's ``IsotonicRegression(out_of_bounds=
        "clip")``: ties averaged, pool-adjacent-violators, redundant breakpoints dropped)."""
        order = np.argsort(scores)
        return cls.fit_sorted(scores[order], labels[order])

    @classmethod
    def fit_sorted(cls, scores: FloatArray, labels: IntArray) -> IsotonicCalibrator:
        """:meth:`fit` for scores already in increasing order."""
        starts = _tie_groups(scores)
        counts = np.diff(np.append(starts, scores.size)).astype(np.float64)
        means = np.add.reduceat(labels.astype(np.float64), starts) / counts
        return cls.pooled(scores[starts], means, counts)

    @classmethod
    def pooled(cls, x: FloatArray, means: FloatArray, counts: FloatArray) -> IsotonicCalibrator:
        """Fit on distinct increasing scores ``x``, each with the mean label and the count of
        its rows."""
        fitted = np.asarray(isotonic_regression(means, weights=counts).x, dtype=np.float64)
        keep = np.ones(fitted.size, dtype=bool)
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(x[keep], fitted[keep])

    def __call__(self, scores: FloatArray) -> FloatArray:
        return np.interp(scores, self.x, self.y)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        return cls(np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64))


def _tie_groups(x: FloatArray) -> IntArray:
    """Where each group of equal scores starts in increasing ``x``, as scikit-learn groups them:
    a new group begins at the first score at least ``resolution`` above the group's first."""
    if x.size == 0:
        return np.zeros(0, dtype=np.intp)
    step = np.diff(x)
    new = step >= _RESOLUTION  # always a new group: the group's first is at most x[j - 1]
    starts = np.concatenate(([0], np.flatnonzero(new) + 1)).astype(np.intp)
    if np.count_nonzero(step) > starts.size - 1:  # distinct but under 1e-15 apart: rare
        close = np.flatnonzero((step > 0) & ~new) + 1
        extra: list[int] = []
        for j in close.tolist():
            first = max(int(starts[np.searchsorted(starts, j) - 1]), extra[-1] if extra else 0)
            if x[j] - x[first] >= _RESOLUTION:
                extra.append(j)
        starts = np.sort(np.concatenate((starts, np.asarray(extra, dtype=np.intp))))
    return starts


def _approximate_mode(class_counts: IntArray, n_draws: int,
                      rng: np.random.RandomState) -> IntArray:
    """scikit-learn's ``utils.extmath._approximate_mode`` (BSD-3-Clause), draw for draw."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (indices,) = np.where(remainder == value)
            add_now = min(len(indices), need_to_add)
            indices = rng.choice(indices, size=add_now, replace=False)
            floored[indices] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    result: IntArray = floored.astype(np.intp)
    return result


def stratified_splits(labels: IntArray, *, n_splits: int = 10, test_size: float = 0.1,
                      seed: int = 42) -> Iterator[tuple[IntArray, IntArray]]:
    """The (train, test) row indices of scikit-learn's ``StratifiedShuffleSplit(n_splits,
    test_size=test_size, random_state=seed).split(X, labels)``, the same rows in the same order.

    Each class keeps its share in both parts. Raises ``ValueError`` where scikit-learn does (a
    class with one row, or fewer rows in a part than classes).

    Examples
    --------
    >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> [test.tolist() for _, test in stratified_splits(labels, n_splits=2, test_size=0.2)]
    [[2, 6], [8, 3]]
    """
    yield from _splits(labels, n_splits, test_size, seed, with_train=True)


def _splits(labels: IntArray, n_splits: int, test_size: float, seed: int, *,
            with_train: bool) -> Iterator[tuple[IntArray, IntArray]]:
    """:func:`stratified_splits`; without ``with_train`` the training rows (all rows but the
    test rows) are not gathered, only the random draws of their shuffle are made."""
    n = labels.size
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < 32:  # small labels
        counts = np.bincount(labels)
        inverse = np.cumsum(counts > 0)[labels] - 1
        counts = counts[counts > 0]
        members = [np.flatnonzero(inverse == c) for c in range(counts.size)]
    else:
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    if counts.min() < 2 or n_train < counts.size or n_test < counts.size:
        raise ValueError("too few rows per class to split")
    rng = np.random.RandomState(seed)
    scratch = np.empty(0 if with_train else n_train, dtype=np.intp)
    for _ in range(n_splits):
        n_i = _approximate_mode(counts, n_train, rng)
        t_i = _approximate_mode(counts - n_i, n_test, rng)
        train, test = [], []
        for rows, k, t in zip(members, n_i, t_i, strict=True):
            shuffled = rows.copy()  # the same draws as scikit-learn's rows[permutation(count)]
            rng.shuffle(shuffled)
            train.append(shuffled[:k])
            test.append(shuffled[k:k + t])
        train_rows = np.concatenate(train) if with_train else scratch
        rng.shuffle(train_rows)  # the draws depend only on the length
        test_rows = np.concatenate(test)
        rng.shuffle(test_rows)
        yield train_rows, test_rows


def expected_calibration_error(labels: IntArray, probabilities: FloatArray,
                               bins: int = 10) -> float:
    """``ECE = Σ_b (n_b / n) · |mean(p_b) - mean(y_b)|`` over equal-count bins of the sorted
    probabilities (NannyML's bins: ``n // bins`` rows each, the remainder in the last).

    Examples
    --------
    >>> expected_calibration_error(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.6, 0.9]), 2)
    0.2
    """
    n = probabilities.size
    if n <= 2 * bins:
        bins = n // 2
        if bins < 2:
            raise ValueError("too few rows for two bins")
    edges = np.arange(0, n + 1, n // bins)
    edges[-1] = n
    order = np.argsort(probabilities)
    sizes = np.diff(edges)
    mean_p = np.add.reduceat(probabilities[order], edges[:-1]) / sizes
    mean_y = np.add.reduceat(labels[order].astype(np.float64), edges[:-1]) / sizes
    return float(np.sum(sizes / n * np.abs(mean_p - mean_y)))


def _decide(labels: IntArray, scores: FloatArray, order: IntArray, auc: float) -> bool:
    """NannyML's rule, on scores whose increasing order is ``order``."""
    if labels.min() == labels.max() or auc > 0.999:
        return False
    n = scores.size
    x, y = scores[order], labels[order]
    position = np.empty(n, dtype=np.intp)
    position[order] = np.arange(n)
    starts = _tie_groups(x)
    sizes = np.diff(np.append(starts, n))
    # Unless distinct scores lie under 1e-15 apart, a training part's groups of tied scores are
    # the whole reference's groups, less those it has no row of: count them per group.
    exact = np.count_nonzero(np.diff(x)) == starts.size - 1
    group = np.repeat(np.arange(starts.size), sizes) if exact else None
    firsts, hits = x[starts], y.astype(np.float64)
    train = np.empty(n, dtype=bool)
    tests, before, after = [], [], []
    try:
        for _, test in _splits(labels, 10, 0.1, 42, with_train=False):  # train: the rest
            train[:] = True
            train[position[test]] = False
            if group is None:
                calibrator = IsotonicCalibrator.fit_sorted(x[train], y[train])
            elif starts.size == n:  # no ties at all
                calibrator = IsotonicCalibrator.pooled(x[train], hits[train],
                                                       np.ones(n - test.size))
            else:
                rows = group[train]
                counts = np.bincount(rows, minlength=starts.size).astype(np.float64)
                positives = np.bincount(rows, weights=hits[train], minlength=starts.size)
                seen = counts > 0
                calibrator = IsotonicCalibrator.pooled(
                    firsts[seen], positives[seen] / counts[seen], counts[seen])
            tests.append(labels[test])
            before.append(scores[test])
            after.append(calibrator(scores[test]))
        truth = np.concatenate(tests)
        return (expected_calibration_error(truth, np.concatenate(before))
                > expected_calibration_error(truth, np.concatenate(after)))
    except ValueError:  # a class too small to split
        return False


def needs_calibration(labels: IntArray, scores: FloatArray, *, auc: float) -> bool:
    """Whether isotonic calibration lowers the held-out expected calibration error (NannyML).

    ``labels`` are 0/1 and ``auc`` is the scores' ROC AUC on them: above 0.999 nothing is
    calibrated. A reference too small for ten stratified splits is not calibrated either
    (NannyML fails on it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=5_000)
    >>> labels = (rng.random(5_000) < 1 / (1 + np.exp(-3 * x))).astype(np.intp)
    >>> needs_calibration(labels, 1 / (1 + np.exp(-x)), auc=0.8)   # under-confident scores
    True
    """
    return _decide(labels, scores, np.argsort(scores), auc)


def fit_calibrator(labels: IntArray, scores: FloatArray, *, auc: float,
                   order: IntArray | None = None) -> IsotonicCalibrator | None:
    """The isotonic calibrator of ``scores`` if :func:`needs_calibration` says so, else None
    (one sort of the scores, ``order``, serves both)."""
    if order is None:
        order = np.argsort(scores)
    if not _decide(labels, scores, order, auc):
        return None
    return IsotonicCalibrator.fit_sorted(scores[order], labels[order])
