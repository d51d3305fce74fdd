"""Cross-check against River 0.26.1, the reference implementation, on the same streams.

The detection points must be River's exactly, for every detector, on error streams (a step,
a fast-switching rate, a gradual ramp) and for the real-valued detectors on normal, heavy-tailed,
integer (tied) and large-offset streams, at River's defaults and with every parameter changed.

Exact by construction: ADWIN (same buckets, clock and bound, operation for operation, so the
window's total and variance are bit-identical) and KSWIN with a seed (the same random sample
from ``random.Random``; the test's p-value is scipy's for the same statistic). DDM, EDDM and
Page-Hinkley differ by design in how they keep a mean: exact sums where River keeps a running
mean (Welford's update for EDDM's variance), because sums vectorise. The tolerances stated and
tested here are on those statistics: 1e-13 relative for DDM and EDDM; for Page-Hinkley 1e-14
on the mean and 1e-10 on the cumulative sums, both times the stream's largest |value| (the
sums fade over 10,000 values, so rounding adds up). A detection could move only if a statistic
met its threshold to within that, and on every stream below none does.

River's ADWIN also drops old buckets after a detection, which keepwell skips (it restarts at
the next value either way): the window is compared only while no detection is pending.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from keepwell.stats.detectors import ADWIN, DDM, EDDM, KSWIN, PageHinkley

from .support import OTHER_PARAMS, build, errors, real_streams, streams_for, switching

drift = pytest.importorskip("river.drift", reason="the cross-check needs River (test extra)")

RIVER = {
    "adwin": lambda **p: drift.ADWIN(**p),
    "ddm": lambda **p: drift.binary.DDM(**p),
    "eddm": lambda **p: drift.binary.EDDM(**p),
    "kswin": lambda **p: drift.KSWIN(**p),
    "page_hinkley": lambda **p: drift.PageHinkley(**p),
}
RELATIVE = 1e-13  # DDM's error rate, EDDM's mean and variance of distances (seen: 5e-15)
MEAN_TOLERANCE = 1e-14  # Page-Hinkley's mean, times the stream's largest |value| (seen: 5e-15)
SUM_TOLERANCE = 1e-10  # its cumulative sums, times the largest |value| (seen: 5e-12)


def river_detections(name: str, values: NDArray[np.float64], **params: Any) -> list[int]:
    detector = RIVER[name](**params)
    found = []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def cases() -> list[Any]:
    out = []
    for name in RIVER:
        n = 6_000 if name == "kswin" else 60_000  # River's KSWIN runs 2,000 updates a second
        for label, values in streams_for(name, n).items():
            out.append(pytest.param(name, values, {}, id=f"{name}-{label}"))
        out.append(pytest.param(name, switching(n), OTHER_PARAMS[name], id=f"{name}-other"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "values", "params"), cases())
def test_detections_are_rivers(name: str, values: NDArray[np.float64],
                               params: dict[str, Any]) -> None:
    params = {**({"seed": 7} if name == "kswin" else {}), **params}
    ours = build(name, **params).update_many(values).tolist()
    assert ours == river_detections(name, values, **params)


@pytest.mark.slow
def test_detections_on_the_peers_stream_are_rivers() -> None:
    """PEERS.md's stream, shortened: the error rate steps from 0.1 to 0.3 half-way."""
    values = errors(300_000, (0.1, 0.3), (150_000,), seed=0)
    for name in ("adwin", "ddm", "eddm", "page_hinkley"):
        assert build(name).update_many(values).tolist() == river_detections(name, values), name


@pytest.mark.parametrize("mode", ["up", "down", "both"])
def test_page_hinkley_modes_are_rivers(mode: str) -> None:
    values = real_streams(30_000)["normal"][::-1].copy()  # a decrease, then nothing
    ours = PageHinkley(mode=mode).update_many(values).tolist()  # type: ignore[arg-type]
    assert ours == river_detections("page_hinkley", values, mode=mode)


@pytest.mark.parametrize("clock", [1, 5, 32, 100])
def test_adwin_clocks_are_rivers(clock: int) -> None:
    values = switching(20_000)
    assert ADWIN(clock=clock).update_many(values).tolist() == \
        river_detections("adwin", values, clock=clock)


@pytest.mark.parametrize("max_buckets", [1, 2, 5, 9])
def test_adwin_bucket_sizes_are_rivers(max_buckets: int) -> None:
    values = real_streams(20_000)["student"]
    ours = ADWIN(max_buckets=max_buckets, clock=4).update_many(values).tolist()
    assert ours == river_detections("adwin", values, max_buckets=max_buckets, clock=4)


def test_adwin_window_is_bit_identical_until_a_detection() -> None:
    values = real_streams(20_000)["large"]
    ours, theirs = ADWIN(), drift.ADWIN()
    for x in values.tolist():
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        if not ours.drift_detected:
            assert ours.width == theirs.width
            assert ours.estimation == theirs.estimation  # total / width, bit for bit
            assert ours._variance == theirs.variance  # the window's sum of squares


def test_ddm_and_eddm_statistics_match_within_tolerance() -> None:
    values = switching(30_000)
    ddm, river_ddm = DDM(), drift.binary.DDM()
    eddm, river_eddm = EDDM(), drift.binary.EDDM()
    for x in values.tolist():
        for ours, theirs in ((ddm, river_ddm), (eddm, river_eddm)):
            ours.update(x)
            theirs.update(x)
            assert ours.drift_detected == theirs.drift_detected
            assert ours.warning_detected == theirs.warning_detected
        if ddm._n:
            assert ddm._errors / ddm._n == pytest.approx(river_ddm._p.get(), rel=RELATIVE)
        if eddm._n_errors > 1:
            distances = river_eddm._error_distances
            mean = eddm._sum / eddm._n_errors
            assert mean == pytest.approx(distances.mean.get(), rel=RELATIVE)
            variance = (eddm._sum_sq - eddm._sum * mean) / (eddm._n_errors - 1)
            assert variance == pytest.approx(distances.get(), rel=RELATIVE, abs=1e-300)


@pytest.mark.parametrize("label", ["normal", "student", "integers", "large"])
def test_page_hinkley_statistics_match_within_tolerance(label: str) -> None:
    values = real_streams(30_000)[label]
    scale = max(1.0, float(np.abs(values).max()))
    ours, theirs = PageHinkley(), drift.PageHinkley()
    for x in values.tolist():
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        assert abs(ours._total / ours._n - theirs._x_mean.get()) <= MEAN_TOLERANCE * scale
        assert abs(ours._sum_increase - theirs._sum_increase) <= SUM_TOLERANCE * scale
        assert abs(ours._sum_decrease - theirs._sum_decrease) <= SUM_TOLERANCE * scale


def test_kswin_p_values_are_rivers() -> None:
    values = real_streams(4_000)["normal"]
    ours, theirs = KSWIN(seed=5), drift.KSWIN(seed=5)
    for x in values.tolist():
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        if ours.p_value is not None and not ours.drift_detected:
            assert ours.p_value == pytest.approx(theirs.p_value, rel=RELATIVE)
