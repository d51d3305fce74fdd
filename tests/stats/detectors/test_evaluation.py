"""The detector evaluation harness: streams with known changes, delays, false alarms, misses."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

from keepwell.errors import ConfigurationError, ValidationError
from keepwell.stats.detectors import DDM, DETECTORS, DriftDetector, PageHinkley
from keepwell.stats.detectors.evaluation import (
    DetectorEvaluation,
    DriftStream,
    error_stream,
    evaluate,
    score,
    standard_streams,
)


class LateBy(DriftDetector):
    """Fires ``lag`` values after each value that is not 0: known delays by construction."""

    name: ClassVar[str] = "late_by"

    def __init__(self, lag: int = 10) -> None:
        self.lag = lag
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        pass

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._countdown = -1

    def _update_one(self, x: float) -> None:
        if self._countdown < 0 and x != 0.0:
            self._countdown = self.lag
        self._drift_detected = self._countdown == 0
        if self._countdown >= 0:
            self._countdown -= 1

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        for i, x in enumerate(chunk.tolist()):
            self._update_one(x)
            if self._drift_detected:
                return i
        return -1


def marked(n: int, marks: tuple[int, ...], points: tuple[int, ...] = (),
           transition: int = 0) -> DriftStream:
    """A stream of zeros with ones at ``marks`` and the given change points."""
    values = np.zeros(n)
    values[list(marks)] = 1.0
    return DriftStream("marked", values, points, transition)


# ---------------------------------------------------------------- streams


def test_error_stream_rates_and_change_points() -> None:
    stream = error_stream(200_000, (0.1, 0.4, 0.2), (50_000, 150_000), seed=3)
    assert stream.kind == "abrupt" and stream.change_points == (50_000, 150_000)
    assert set(np.unique(stream.values)) <= {0.0, 1.0}
    for (a, b), rate in zip([(0, 50_000), (50_000, 150_000), (150_000, 200_000)],
                            (0.1, 0.4, 0.2), strict=True):
        assert stream.values[a:b].mean() == pytest.approx(rate, abs=0.01)
    with pytest.raises(ValueError, match="read-only"):
        stream.values[0] = 1.0
    assert np.array_equal(stream.values, error_stream(200_000, (0.1, 0.4, 0.2),
                                                      (50_000, 150_000), seed=3).values)


def test_gradual_stream_ramps_linearly() -> None:
    stream = error_stream(400_000, (0.0, 1.0), (100_000,), transition=200_000, seed=4)
    assert stream.kind == "gradual"
    assert stream.values[:100_000].sum() == 0
    assert stream.values[300_000:].min() == 1.0
    quarters = stream.values[100_000:300_000].reshape(4, -1).mean(axis=1)
    assert quarters == pytest.approx([0.125, 0.375, 0.625, 0.875], abs=0.01)


def test_standard_streams() -> None:
    kinds = [(s.name, s.kind) for s in standard_streams(10_000)]
    assert kinds == [("stationary", "stationary"), ("abrupt", "abrupt"), ("gradual", "gradual")]


@pytest.mark.parametrize(("n", "rates", "points", "transition"), [
    (0, (0.1,), (), 0), (100, (0.1, 0.2), (), 0), (100, (1.5,), (), 0),
    (100, (0.1, 0.2), (100,), 0), (100, (0.1, 0.2, 0.3), (60, 40), 0),
    (100, (0.1, 0.2), (50,), -1),
])
def test_error_stream_refuses_bad_arguments(n: int, rates: tuple[float, ...],
                                            points: tuple[int, ...], transition: int) -> None:
    with pytest.raises(ValidationError):
        error_stream(n, rates, points, transition=transition)


# ---------------------------------------------------------------- scoring


def test_known_delays_false_alarms_and_misses() -> None:
    stream = marked(10_000, (), (2_000, 5_000, 8_000))
    detections = [500, 2_030, 2_100, 5_900, 9_999]
    result = score(detections, stream)
    assert result.delays == (30, 900, 1_999)
    assert result.missed == 0
    assert result.false_alarms == 2  # 500 (before any change) and 2,100 (a repeat)
    late = score(detections, stream, max_delay=1_000)
    assert late.delays == (30, 900, None) and late.missed == 1
    assert late.false_alarms == 3  # 9,999 is too late to count for the change at 8,000


def test_a_detection_belongs_to_the_change_it_follows() -> None:
    stream = marked(10_000, (), (2_000, 5_000))
    result = score([5_001], stream)
    assert result.delays == (None, 1) and result.missed == 1 and result.false_alarms == 0


def test_repeats_during_a_gradual_ramp_are_not_false_alarms() -> None:
    stream = marked(10_000, (), (2_000,), transition=1_000)
    result = score([2_100, 2_500, 2_999, 3_000, 4_000], stream)
    assert result.delays == (100,)
    assert result.false_alarms == 2  # 3,000 and 4,000 come after the ramp


def test_no_detection_at_all() -> None:
    result = score([], marked(1_000, (), (500,)))
    assert result.delays == (None,) and result.missed == 1 and result.false_alarms == 0


def test_score_refuses_detections_outside_the_stream() -> None:
    with pytest.raises(ValidationError):
        score([1_000], marked(1_000, ()))
    with pytest.raises(ValidationError):
        score([5], marked(1_000, ()), max_delay=0)


# ---------------------------------------------------------------- evaluate


def test_evaluate_reports_the_known_delays_of_a_plugin() -> None:
    registry = DETECTORS.extended([LateBy])
    streams = [marked(5_000, (1_000, 3_000), (1_000, 3_000)), marked(5_000, (10, 2_000), (2_000,))]
    result = evaluate("late_by", streams, registry=registry, lag=25)
    assert [s.delays for s in result.scores] == [(25, 25), (25,)]
    assert result.mean_delay == 25.0
    assert result.detected == 3 and result.missed == 0 and result.n_changes == 3
    assert result.false_alarms == 1  # the mark at 10 in the second stream
    assert result.n_updates == 10_000
    assert result.false_alarms_per_100k == pytest.approx(10.0)
    assert result.params == {"lag": 25} and result.detector == "late_by"


def test_ddm_detects_a_jump_from_no_errors_to_all_errors_at_once() -> None:
    stream = error_stream(4_000, (0.0, 1.0), (2_000,))
    result = evaluate(DDM(), [stream])
    assert result.scores[0].delays == (0,) and result.false_alarms == 0


def test_missed_drift_and_no_delay() -> None:
    stream = error_stream(4_000, (0.1, 0.1001), (2_000,), seed=5)
    result = evaluate("adwin", [stream])
    assert result.missed == 1 and result.mean_delay is None


def test_evaluate_clones_and_never_feeds_the_template() -> None:
    template = PageHinkley(threshold=10.0)
    result = evaluate(template, standard_streams(20_000))
    assert template.update_many([]).size == 0 and not template.drift_detected
    assert template._n == 0
    assert result.params == template.get_params()
    with pytest.raises(ValidationError, match="detector id"):
        evaluate(template, threshold=5.0)
    with pytest.raises(ConfigurationError):
        evaluate("hddm")


@pytest.mark.parametrize("name", DETECTORS.names)
def test_every_registered_detector_runs_on_the_standard_streams(name: str) -> None:
    params: dict[str, Any] = {"seed": 1} if name == "kswin" else {}
    result = evaluate(name, standard_streams(30_000), **params)
    assert isinstance(result, DetectorEvaluation)
    assert result.n_changes == 2 and result.detected + result.missed == 2
    assert result.n_updates == 90_000
    data = json.loads(json.dumps(result.to_dict()))
    assert data["detector"] == name
    assert data["false_alarms"] == result.false_alarms
    assert [s["stream"] for s in data["streams"]] == ["stationary", "abrupt", "gradual"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.detector = "other"  # type: ignore[misc]
