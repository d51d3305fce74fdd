"""The drift test contract: the per-column rule, the result, the parameters."""

from __future__ import annotations

import json

import pytest

from keepwell.stats.drift import (
    DriftResult,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    StatisticKind,
    is_drift,
)


@pytest.mark.parametrize(("p", "effect", "alpha", "expected"), [
    (0.01, 0.2, 0.05, True), (0.01, 0.05, 0.05, False), (0.2, 0.5, 0.05, False),
    (None, 0.5, 0.05, False), (None, 0.5, None, True), (0.9, 0.1, None, True),
    (0.05, 0.2, 0.05, False),  # strictly below alpha
])
def test_significant_and_material(p: float | None, effect: float, alpha: float | None,
                                  expected: bool) -> None:
    assert is_drift(p, effect, alpha=alpha, threshold=0.1) is expected


def test_a_result_is_plain_json() -> None:
    result = KolmogorovSmirnov().compare([1.0, 2.0, 3.0, 4.0], [1.5, 2.5], feature="f")
    data = result.to_dict()
    assert data["kind"] == "p_value" and isinstance(data["kind"], str)
    assert json.loads(json.dumps(data)) == data
    assert DriftResult(**{**data, "kind": StatisticKind(data["kind"])}) == result


def test_feature_defaults_to_the_profile_name() -> None:
    from .samples import profile_of

    assert KolmogorovSmirnov().compare(profile_of([1.0, 2.0, 3.0]), [2.0]).feature == "x"
    assert KolmogorovSmirnov().compare([1.0, 2.0], [2.0]).feature == ""


def test_parameters_and_repr() -> None:
    test = PopulationStabilityIndex(threshold=0.25)
    assert repr(test) == "PopulationStabilityIndex(alpha=0.05, threshold=0.25, epsilon=0.0001)"
    assert test.params() == {"alpha": 0.05, "threshold": 0.25, "epsilon": 0.0001}
    assert str(StatisticKind.DISTANCE) == "distance"
