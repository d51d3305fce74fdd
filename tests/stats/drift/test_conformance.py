"""One conformance suite over every registered drift test (STYLE.md, point 6).

For each test in ``DRIFT_TESTS`` and each kind of column it applies to: identical samples do
not drift; a planted shift does; on 400 seeded same-distribution trials the false-alarm rate
stays at or under the test's level; NaN and empty input raise ``ValidationError``; the result
serialises to JSON; the docstring teaches (formula, source, sections) and its example runs.

The false-alarm bound. Each trial's verdict is a Bernoulli draw; a test whose false-alarm
probability is exactly ``alpha`` exceeds ``binom.ppf(0.999, trials, alpha) / trials``
(0.0825 for 400 trials at 0.05) with probability below 0.1 %. Seeds are fixed, so the suite
is deterministic; the bound leaves room for the sampling noise of 400 trials and nothing
else. It is checked twice: for the default verdict, and for the significance gate alone
(``threshold=0``), so that the p-values themselves are held to their level and the effect
gate cannot hide a miscalibrated one.
"""

from __future__ import annotations

import doctest
import json
from typing import Any

import numpy as np
import pytest
from scipy import stats

from keepwell.errors import ValidationError
from keepwell.stats.drift import DRIFT_TESTS, DriftResult, DriftTest, StatisticKind

from .samples import LEVEL_SHARES, LEVELS, Trial, profile_of

ALPHA = 0.05
TRIALS = 400


def cases() -> list[Any]:
    """(test class, column kind) for every registered test and every kind it applies to."""
    out = []
    for test in DRIFT_TESTS:
        kinds = ["binary"] if test.name == "z" else sorted(test.applies_to)
        out += [pytest.param(test, kind, id=f"{test.name}-{kind}") for kind in kinds]
    return out


def samples(kind: str, *, shifted: bool, n: int = 500, seed: int = 7) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return rng.normal(size=n), rng.normal(1.0 if shifted else 0.0, 1.0, n)
    if kind == "categorical":
        current = LEVEL_SHARES[::-1] if shifted else LEVEL_SHARES
        return rng.choice(LEVELS, n, p=LEVEL_SHARES), rng.choice(LEVELS, n, p=current)
    return (rng.random(n) < 0.3).astype(float), (rng.random(n) < (0.6 if shifted else 0.3)
                                                 ).astype(float)


@pytest.mark.parametrize(("test", "kind"), cases())
def test_identical_samples_do_not_drift(test: type[DriftTest], kind: str) -> None:
    reference, _ = samples(kind, shifted=False)
    for ref in (reference, profile_of(reference)):
        result = test().compare(ref, reference)
        assert not result.drifted
        assert result.p_value is None or result.p_value > 0.5
    exact = test().compare(reference, reference)  # raw reference: no grid error at all
    assert exact.effect == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("test", "kind"), cases())
def test_a_planted_shift_drifts(test: type[DriftTest], kind: str) -> None:
    reference, current = samples(kind, shifted=True)
    for ref in (reference, profile_of(reference)):
        result = test().compare(ref, current)
        assert result.drifted, result
        assert result.effect >= result.threshold
        assert result.p_value is not None and result.p_value < 1e-6


@pytest.mark.parametrize(("test", "kind"), cases())
def test_false_alarms_stay_at_the_level(test: type[DriftTest], kind: str,
                                        null_trials: dict[str, list[Trial]]) -> None:
    bound = stats.binom.ppf(0.999, TRIALS, ALPHA) / TRIALS
    trials = null_trials[kind]
    assert len(trials) == TRIALS
    default = [test(alpha=ALPHA).compare(t.profile, t.current).drifted for t in trials]
    significance_only = [test(alpha=ALPHA, threshold=0.0).compare(t.profile, t.current).drifted
                         for t in trials]
    assert np.mean(default) <= bound
    assert np.mean(significance_only) <= bound
    assert np.mean(significance_only) >= 0.01  # the p-values are not degenerate either


@pytest.mark.parametrize(("test", "kind"), cases())
def test_missing_values_are_excluded_and_counted(test: type[DriftTest], kind: str) -> None:
    reference, current = samples(kind, shifted=False)
    with_gaps = np.array([*current, None, np.nan], dtype=object)
    if kind != "categorical":
        with_gaps = np.append(current, [np.nan, np.nan])
    result = test().compare(profile_of(reference), with_gaps)
    clean = test().compare(profile_of(reference), current)
    assert (result.n_current, result.n_current_missing) == (len(current), 2)
    assert result.statistic == pytest.approx(clean.statistic)


@pytest.mark.parametrize(("test", "kind"), cases())
@pytest.mark.parametrize("bad", [[], [np.nan, np.nan], [None, None]],
                         ids=["empty", "all-nan", "all-none"])
def test_empty_or_all_missing_input_raises(test: type[DriftTest], kind: str,
                                           bad: list[Any]) -> None:
    reference, _ = samples(kind, shifted=False)
    for ref in (reference, profile_of(reference)):
        with pytest.raises(ValidationError, match="nothing to compare"):
            test().compare(ref, np.array(bad, dtype=object if kind == "categorical" else float))


@pytest.mark.parametrize(("test", "kind"), cases())
def test_an_empty_reference_raises(test: type[DriftTest], kind: str) -> None:
    _, current = samples(kind, shifted=False)
    with pytest.raises(ValidationError, match="no non-missing values"):
        test().compare(np.array([], dtype=float if kind != "categorical" else object), current)


@pytest.mark.parametrize("test", list(DRIFT_TESTS), ids=lambda t: t.name)
def test_a_column_of_the_wrong_kind_raises(test: type[DriftTest]) -> None:
    rng = np.random.default_rng(3)
    if test.name == "z":
        wrong: Any = profile_of(rng.choice(LEVELS, 100))
        current: Any = rng.choice(LEVELS, 100)
    elif "numeric" not in test.applies_to:
        wrong, current = profile_of(rng.normal(size=100)), rng.normal(size=100)
    elif "categorical" not in test.applies_to:
        wrong, current = profile_of(rng.choice(LEVELS, 100)), rng.choice(LEVELS, 100)
    else:  # applies to both: numeric reference, text current
        wrong, current = profile_of(rng.normal(size=100)), rng.choice(LEVELS, 100)
    with pytest.raises(ValidationError):
        test().compare(wrong, current)


@pytest.mark.parametrize(("test", "kind"), cases())
def test_the_result_is_frozen_and_serialises_to_json(test: type[DriftTest], kind: str) -> None:
    reference, current = samples(kind, shifted=True)
    result = test().compare(profile_of(reference), current, feature="x")
    assert isinstance(result, DriftResult)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["test"] == test.name and data["feature"] == "x"
    assert data["kind"] == str(test.kind) and data["drifted"] is True
    assert set(data) >= {"statistic", "p_value", "effect", "threshold", "alpha", "n_reference",
                         "n_current"}
    with pytest.raises(AttributeError):
        result.drifted = False  # type: ignore[misc]


@pytest.mark.parametrize("test", list(DRIFT_TESTS), ids=lambda t: t.name)
def test_the_docstring_teaches_and_its_example_runs(test: type[DriftTest]) -> None:
    doc = test.__doc__ or ""
    for section in ("Source", "Parameters", "Returns", "Raises", "Examples"):
        assert section in doc, f"{test.__name__} has no {section} section"
    assert "=" in doc.split("\n\n")[1], "the formula belongs right after the summary line"
    found = doctest.DocTestFinder(recurse=False).find(test, test.__name__,
                                                        globs={test.__name__: test})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for example in found:
        runner.run(example)
    summary = runner.summarize(verbose=False)
    assert summary.attempted >= 2 and summary.failed == 0


@pytest.mark.parametrize("test", list(DRIFT_TESTS), ids=lambda t: t.name)
def test_parameters_are_stored_as_given_and_checked_when_used(test: type[DriftTest]) -> None:
    instance = test(alpha=0.01, threshold=0.3)
    assert instance.params()["alpha"] == 0.01 and instance.params()["threshold"] == 0.3
    assert repr(type(instance)(**instance.params())) == repr(instance)
    assert test.kind in (StatisticKind.P_VALUE, StatisticKind.DISTANCE)
    reference, current = samples("binary" if test.name == "z" else
                                 sorted(test.applies_to)[-1], shifted=False)
    for bad in ({"alpha": 1.5}, {"alpha": 0.0}, {"threshold": -0.1},
                {"threshold": float("nan")}):
        broken = test(**bad)  # stored, not validated, until used
        with pytest.raises(ValidationError):
            broken.compare(reference, current)


@pytest.mark.parametrize(("test", "kind"), cases())
def test_without_a_significance_gate_the_distance_alone_decides(test: type[DriftTest],
                                                                kind: str) -> None:
    reference, current = samples(kind, shifted=True)
    result = test(alpha=None).compare(reference, current)
    assert result.alpha is None and result.drifted
    if test.kind is StatisticKind.DISTANCE:
        assert result.p_value is None
