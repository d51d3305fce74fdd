"""One conformance suite over every registered streaming drift detector.

For each detector in ``DETECTORS``: a long stationary stream stays within the detector's
false-alarm budget; a planted abrupt change is detected within its delay budget;
``update_many`` finds exactly the detections of repeated ``update`` (and leaves the same state,
however a stream is cut into batches, and after a pickle round trip); parameters are stored
unchanged; after a detection the
detector restarts as documented; NaN, infinity, and for the binary detectors anything but 0 or
1, raise ``ValidationError`` and change nothing; the docstring teaches and its example runs.

The budgets are River's defaults' own behaviour, measured on five seeds and rounded up, not
targets: EDDM and KSWIN on real values are known to alarm often (KSWIN tests after every
value at alpha = 0.005). Streams are seeded, so the suite is deterministic.
"""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest

from keepwell.errors import ValidationError
from keepwell.stats.detectors import DETECTORS, DriftDetector, WarningDetector
from keepwell.stats.detectors.evaluation import error_stream, score

from .support import OTHER_PARAMS, build, busy, errors, flags, loop, streams_for, switching

NAMES = DETECTORS.names

# False alarms per 100,000 updates allowed on a long stationary stream, River's defaults.
BINARY_BUDGET = {"adwin": 1, "ddm": 2, "eddm": 75, "kswin": 1, "page_hinkley": 5}
NORMAL_BUDGET = {"adwin": 1, "kswin": 150, "page_hinkley": 80}
# Largest delay allowed to detect an error rate stepping from 0.1 to 0.5.
DELAY_BUDGET = {"adwin": 200, "ddm": 5_000, "eddm": 2_000, "kswin": 2_000, "page_hinkley": 500}


def test_every_detector_has_budgets() -> None:
    assert set(NAMES) == set(BINARY_BUDGET) == set(DELAY_BUDGET) == set(OTHER_PARAMS)
    real = {name for name in NAMES if DETECTORS.get(name).input_kind == "real"}
    assert real == set(NORMAL_BUDGET)


@pytest.mark.parametrize("name", NAMES)
def test_stationary_error_stream_stays_within_the_false_alarm_budget(name: str) -> None:
    n = 100_000 if name == "kswin" else 200_000  # KSWIN runs a test after every value
    for seed in (0, 1):
        stream = error_stream(n, (0.1,), seed=seed)
        found = build(name).update_many(stream.values)
        assert found.size <= BINARY_BUDGET[name] * n / 100_000, (seed, found.size)


@pytest.mark.parametrize("name", sorted(NORMAL_BUDGET))
def test_stationary_normal_stream_stays_within_the_false_alarm_budget(name: str) -> None:
    n = 100_000 if name == "kswin" else 200_000
    values = np.random.default_rng(5).normal(0.0, 1.0, n)
    assert build(name).update_many(values).size <= NORMAL_BUDGET[name] * n / 100_000


@pytest.mark.parametrize("name", NAMES)
def test_planted_abrupt_change_is_detected_within_the_delay_budget(name: str) -> None:
    for seed in (100, 101, 102):
        stream = error_stream(40_000, (0.1, 0.5), (20_000,), seed=seed)
        found = build(name).update_many(stream.values)
        result = score(found, stream, max_delay=DELAY_BUDGET[name])
        assert result.missed == 0, (seed, found[found >= 19_000][:3])


@pytest.mark.parametrize("name", NAMES)
def test_update_many_finds_exactly_the_detections_of_update(name: str) -> None:
    n = 6_000 if name == "kswin" else 40_000
    for label, values in streams_for(name, n).items():
        assert build(name).update_many(values).tolist() == loop(build(name), values), label


@pytest.mark.parametrize("name", NAMES)
def test_update_many_with_other_parameters(name: str) -> None:
    values = busy(name, 12_000 if name == "kswin" else 60_000)
    batch = build(name, **OTHER_PARAMS[name]).update_many(values).tolist()
    assert batch == loop(build(name, **OTHER_PARAMS[name]), values)
    assert batch  # the stream has changes enough for every detector


@pytest.mark.parametrize("name", NAMES)
def test_batches_of_any_size_leave_the_state_of_the_loop(name: str) -> None:
    """Cut a stream at random places, mix batches with single updates: same detections,
    and the same drift and warning flags at every cut."""
    values = busy(name, 12_000 if name == "kswin" else 60_000, seed=9)
    rng = np.random.default_rng(11)
    cuts = np.sort(rng.choice(np.arange(1, values.size), 60, replace=False))
    reference, mixed = build(name), build(name)
    expected: list[int] = []
    got: list[int] = []
    start = 0
    for k, end in enumerate([*cuts.tolist(), values.size]):
        piece = values[start:end]
        expected += [start + i for i in loop(reference, piece)]
        if k % 3 == 2:
            got += [start + i for i in loop(mixed, piece)]
        else:
            got += [start + int(i) for i in mixed.update_many(piece)]
        assert flags(mixed) == flags(reference), (start, end)
        start = end
    assert got == expected
    assert len(expected) > 3


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_stored_unchanged(name: str) -> None:
    params = OTHER_PARAMS[name]
    detector = build(name, **params)
    assert detector.get_params() == params
    assert all(getattr(detector, key) is value for key, value in params.items())
    detector.update_many(switching(3_000))
    assert all(getattr(detector, key) is value for key, value in params.items())
    copy = detector.clone()
    assert type(copy) is type(detector) and copy.get_params() == params
    assert not copy.drift_detected


@pytest.mark.parametrize("name", NAMES)
def test_a_detection_restarts_the_detector_at_the_next_value(name: str) -> None:
    values = busy(name, 12_000 if name == "kswin" else 40_000)
    found = build(name).update_many(values)
    assert found.size >= 2
    first = int(found[0])
    fresh = build(name).update_many(values[first + 1 :]) + first + 1
    assert found[1:].tolist() == fresh.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_a_pickled_detector_carries_on_where_it_was(name: str) -> None:
    values = busy(name, 8_000)
    detector = build(name)
    detector.update_many(values[:4_321])
    copy = pickle.loads(pickle.dumps(detector))
    rest = values[4_321:]
    assert copy.update_many(rest).tolist() == detector.update_many(rest).tolist()


@pytest.mark.parametrize("name", NAMES)
def test_reset_forgets_everything(name: str) -> None:
    values = switching(8_000)
    detector = build(name)
    detector.update_many(values[:5_000])
    detector.reset()
    assert flags(detector) == (False, False)
    assert detector.update_many(values).tolist() == build(name).update_many(values).tolist()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_raises_and_changes_nothing(name: str, bad: float) -> None:
    values = errors(3_000, (0.2,), seed=1)
    detector = build(name)
    detector.update_many(values[:1_500])
    with pytest.raises(ValidationError):
        detector.update(bad)
    with pytest.raises(ValidationError, match="index 7"):
        detector.update_many(np.r_[values[1_500:1_507], bad, values[1_507:]])
    whole = build(name).update_many(values)
    assert detector.update_many(values[1_500:]).tolist() == (whole[whole >= 1_500] - 1_500).tolist()


@pytest.mark.parametrize("name", NAMES)
def test_non_numbers_raise(name: str) -> None:
    detector = build(name)
    for bad in ("0.5", None, [1.0], np.ones(2), 1 + 2j):
        with pytest.raises(ValidationError):
            detector.update(bad)  # type: ignore[arg-type]
    for batch in ("0.5", ["a", "b"], [None, 1.0], [[0.0, 1.0]], np.ones((2, 2)), [1j]):
        with pytest.raises(ValidationError):
            detector.update_many(batch)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [n for n in NAMES if DETECTORS.get(n).input_kind == "binary"])
def test_binary_detectors_refuse_other_values(name: str) -> None:
    detector = build(name)
    for bad in (0.5, 2.0, -1.0):
        with pytest.raises(ValidationError, match="binary"):
            detector.update(bad)
        with pytest.raises(ValidationError, match="index 1"):
            detector.update_many([0.0, bad])
    detector.update(True)
    detector.update(np.int64(0))  # type: ignore[arg-type]
    assert detector.update_many(np.array([True, False])).size == 0


@pytest.mark.parametrize("name", NAMES)
def test_inputs_of_every_numeric_type_agree(name: str) -> None:
    values = switching(6_000)
    expected = build(name).update_many(values).tolist()
    assert build(name).update_many(values.astype(np.int8)).tolist() == expected
    assert build(name).update_many(values.astype(bool)).tolist() == expected
    assert build(name).update_many(values.tolist()).tolist() == expected
    assert build(name).update_many([]).tolist() == []


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_raise_validation_error(name: str) -> None:
    cls = DETECTORS.get(name)
    for key, value in OTHER_PARAMS[name].items():
        if key == "mode":
            bad: object = "sideways"
        elif key == "seed":
            bad = 1.5
        else:
            bad = -1 if isinstance(value, int) else math.nan
        with pytest.raises(ValidationError):
            cls(**{key: bad})
        if isinstance(value, float):  # rounds differently in the loop and in the batch
            with pytest.raises(ValidationError):
                cls(**{**OTHER_PARAMS[name], key: np.float32(value)})
            cls(**{**OTHER_PARAMS[name], key: np.float64(value)})


@pytest.mark.parametrize("name", NAMES)
def test_docstring_teaches_and_its_example_runs(name: str) -> None:
    cls = DETECTORS.get(name)
    doc = cls.__doc__ or ""
    for part in ("Parameters", "Examples", "Source"):
        assert part in doc, part
    for key in OTHER_PARAMS[name]:
        assert f"\n    {key}\n" in doc, key
    tests = doctest.DocTestFinder().find(cls, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    attempted = 0
    for test in tests:
        result = runner.run(test)
        assert result.failed == 0, test.name
        attempted += result.attempted
    assert attempted >= 3


@pytest.mark.parametrize("name", NAMES)
def test_warning_flags_only_on_warning_detectors(name: str) -> None:
    detector = build(name)
    assert isinstance(detector, WarningDetector) == (name in {"ddm", "eddm"})
    assert isinstance(detector, DriftDetector)
    assert detector.name == name
    assert repr(detector).startswith(type(detector).__name__ + "(")
