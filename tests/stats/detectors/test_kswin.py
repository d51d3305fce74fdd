"""KSWIN's pieces: River's sampler reproduced, the KS count, its p-value and critical count."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from keepwell.errors import ValidationError
from keepwell.stats.detectors import KSWIN
from keepwell.stats.detectors.kswin import _critical_count, _ks_counts, _p_value, _sample


@pytest.mark.parametrize(("population", "k"), [(70, 30), (1, 1), (10, 0), (100, 5), (64, 32),
                                               (65, 1), (1_000, 30), (5_000, 200), (300, 150)])
def test_sampler_draws_what_random_sample_draws(population: int, k: int) -> None:
    for seed in range(4):
        ours, theirs = random.Random(seed), random.Random(seed)
        for _ in range(25):
            assert _sample(ours, population, k) == theirs.sample(range(population), k)
        assert ours.getstate() == theirs.getstate()


def test_ks_counts_are_scipys_statistic_times_the_sample_size() -> None:
    rng = np.random.default_rng(3)
    for r, draw in ((30, lambda n: rng.normal(size=n)), (30, lambda n: rng.integers(0, 3, n)),
                    (7, lambda n: rng.integers(0, 2, n)), (200, lambda n: rng.exponential(size=n))):
        first = np.array([draw(r) for _ in range(40)], dtype=np.float64)
        second = np.array([draw(r) + rng.integers(0, 2) for _ in range(40)], dtype=np.float64)
        counts = _ks_counts(first, second)
        for row in range(40):
            expected = stats.ks_2samp(first[row], second[row], method="asymp").statistic
            assert counts[row] / r == pytest.approx(expected, abs=1e-12)


def test_p_value_is_scipys_for_the_same_statistic() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        first, second = rng.normal(size=30), rng.normal(0.8, 1.0, 30)
        result = stats.ks_2samp(first, second, method="auto")
        count = int(_ks_counts(first[None, :], second[None, :])[0])
        assert _p_value(count, 30) == pytest.approx(result.pvalue, rel=1e-12)


@pytest.mark.parametrize(("alpha", "r"), [(0.005, 30), (0.0001, 30), (0.05, 10), (0.01, 100),
                                          (0.2, 1_000), (1e-12, 5)])
def test_critical_count_is_the_smallest_significant_one(alpha: float, r: int) -> None:
    k = _critical_count(alpha, r)
    assert 10 * k > r
    if k <= r:
        assert _p_value(k, r) <= alpha
    if k - 1 > r // 10:
        assert _p_value(k - 1, r) > alpha


def test_statistic_and_p_value_follow_the_last_test() -> None:
    detector = KSWIN(seed=1)
    assert detector.statistic is None and detector.p_value is None
    detector.update_many(np.zeros(99))
    assert detector.statistic is None
    detector.update(0.0)
    assert detector.statistic == 0.0 and detector.p_value == 1.0
    detector.reset()
    assert detector.p_value is None


def test_window_must_hold_two_samples() -> None:
    with pytest.raises(ValidationError, match="2 \\* stat_size"):
        KSWIN(window_size=50, stat_size=30)
    KSWIN(window_size=60, stat_size=30)
