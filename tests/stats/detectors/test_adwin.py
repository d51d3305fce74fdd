"""ADWIN's batch path: the exponential histogram read from the count alone equals the one the
insert-and-merge loop builds, bit for bit, at every count and bucket size."""

from __future__ import annotations

import numpy as np
import pytest

from keepwell.stats.detectors import ADWIN
from keepwell.stats.detectors._adwin_buckets import _merges

from .support import real_streams


def simulate_counts(received: int, max_buckets: int) -> tuple[int, int]:
    """(held, merged) of one level after ``received`` buckets, by River's rule."""
    held = merged = 0
    for _ in range(received):
        held += 1
        if held == max_buckets + 1:
            held -= 2
            merged += 1
    return held, merged


@pytest.mark.parametrize("max_buckets", [1, 2, 3, 5, 8])
def test_merge_count_closed_form(max_buckets: int) -> None:
    counts = np.arange(200)
    merges = _merges(counts, max_buckets)
    for c in counts.tolist():
        held, merged = simulate_counts(c, max_buckets)
        assert merges[c] == merged
        assert c - 2 * merges[c] == held


@pytest.mark.parametrize("max_buckets", [1, 2, 5, 7])
def test_batches_leave_the_buckets_the_loop_builds(max_buckets: int) -> None:
    values = real_streams(6_000)["student"]
    # A clock longer than the stream: no tests, so no detection resets the window.
    looped, batched = ADWIN(max_buckets=max_buckets, clock=10**6), ADWIN(
        max_buckets=max_buckets, clock=10**6)
    start = 0
    for end in [1, 2, 3, 7, 64, 65, 300, 1_023, 1_024, 1_025, 4_000, 6_000]:
        for x in values[start:end].tolist():
            looped.update(x)
        batched.update_many(values[start:end])
        assert batched._levels == looped._levels, end
        assert batched._width == looped._width == end
        assert batched._total == looped._total
        assert batched._variance == looped._variance
        start = end


def test_window_properties() -> None:
    detector = ADWIN()
    assert detector.width == 0 and detector.estimation == 0.0
    detector.update_many([1.0, 0.0, 1.0, 1.0])
    assert detector.width == 4 and detector.estimation == 0.75
    detector.reset()
    assert detector.width == 0


def test_a_large_shift_is_found_at_the_first_test_after_it() -> None:
    values = np.r_[np.zeros(1_000), np.ones(1_000)]
    found = ADWIN().update_many(values)
    assert found.tolist() == [1_023]  # tests run every 32 values: 1,024 is the first after
