"""Many columns at once, and the ACS employment data (2015 reference, 2016–2018).

On ACS the default verdict must raise no dataset-level drift for any later year, although
bare p-values flag 6, 8 and 10 of the 18 columns; a planted shift of documented size — every
age moved up by half a reference standard deviation (12 years) — must raise it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keepwell.errors import ValidationError
from keepwell.registry.profile import ReferenceProfile
from keepwell.stats.drift import (
    ChiSquare,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    TwoProportionZTest,
    compare_frame,
    default_test,
)

from .samples import profile_of

ACS = Path(__file__).resolve().parents[3] / "data" / "acs-employment-ma"
OUTPUTS = ["prediction", "predicted_probability"]


@pytest.fixture(scope="module")
def acs_profile(acs: pd.DataFrame) -> dict[str, Any]:
    features = [c for c in acs.columns if c not in ("id", "year", "employed", *OUTPUTS)]
    profile = ReferenceProfile.from_frame(acs[features], y=acs["employed"],
                                          outputs=acs[OUTPUTS])
    return {**profile.features, **profile.outputs}


@pytest.fixture(scope="module")
def acs_years() -> pd.DataFrame:
    return pd.read_parquet(ACS / "employment_MA_analysis.pq")


def test_default_tests_by_column_kind(acs_profile: dict[str, Any]) -> None:
    assert isinstance(default_test(acs_profile["AGEP"]), KolmogorovSmirnov)
    assert isinstance(default_test(acs_profile["SCHL"]), ChiSquare)
    assert isinstance(default_test(acs_profile["SEX"]), TwoProportionZTest)
    assert isinstance(default_test(acs_profile["prediction"]), TwoProportionZTest)
    assert isinstance(default_test(acs_profile["predicted_probability"]), KolmogorovSmirnov)
    assert isinstance(default_test(np.array([True, False])), TwoProportionZTest)


@pytest.mark.parametrize("year", [2016, 2017, 2018])
def test_acs_later_years_raise_no_dataset_drift(acs_profile: dict[str, Any],
                                                acs_years: pd.DataFrame, year: int) -> None:
    window = acs_years[acs_years["year"] == year]
    verdict = compare_frame(acs_profile, window)
    assert not verdict.drifted and verdict.drifted_columns == ()
    assert len(verdict.columns) == 18
    bare = sum(r.p_value is not None and r.p_value < 0.05 for r in verdict.columns)
    assert bare == {2016: 6, 2017: 8, 2018: 10}[year]  # what a bare p-value would flag
    assert max(r.effect / r.threshold for r in verdict.columns) < 0.5


def test_acs_a_planted_shift_raises_it(acs: pd.DataFrame, acs_profile: dict[str, Any],
                                       acs_years: pd.DataFrame) -> None:
    window = acs_years[acs_years["year"] == 2018].copy()
    years = round(0.5 * acs["AGEP"].std())
    assert years == 12
    window["AGEP"] = window["AGEP"] + years
    verdict = compare_frame(acs_profile, window)
    assert verdict.drifted and verdict.drifted_columns == ("AGEP",)
    assert verdict["AGEP"].effect == pytest.approx(
        stats.ks_2samp(acs["AGEP"], window["AGEP"]).statistic, abs=0.01)
    small = acs_years[acs_years["year"] == 2018].copy()
    small["AGEP"] = small["AGEP"] + 2  # 0.1 std: certain (p < 1e-50) but negligible
    verdict = compare_frame(acs_profile, small)
    assert not verdict.drifted and verdict["AGEP"].p_value_adjusted < 1e-50


def test_raw_reference_frame_and_chosen_tests() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=2_000), "b": rng.normal(size=2_000),
                              "c": rng.choice(list("xyz"), 2_000)})
    current = pd.DataFrame({"a": rng.normal(1, 1, 500), "b": rng.normal(size=500),
                            "c": rng.choice(list("xyz"), 500), "extra": 1.0})
    verdict = compare_frame(reference, current)
    assert verdict.drifted_columns == ("a",)
    assert [r.test for r in verdict.columns] == ["ks", "ks", "chisquare"]
    psi = compare_frame(reference, current, tests=PopulationStabilityIndex())
    assert [r.test for r in psi.columns] == ["psi"] * 3
    mixed = compare_frame(reference, current, tests={"b": PopulationStabilityIndex()},
                          columns=["a", "b"])
    assert [(r.feature, r.test) for r in mixed.columns] == [("a", "ks"), ("b", "psi")]


def test_the_frame_equals_one_test_at_a_time_before_the_family_rule() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, 1, 3_000), rng.gamma(2.2, 1, 1_000)
    profile = profile_of(a)
    single = KolmogorovSmirnov().compare(profile, b, feature="x")
    from_frame = compare_frame({"x": profile}, {"x": b})["x"]
    assert from_frame.statistic == single.statistic and from_frame.p_value == single.p_value
    assert from_frame.p_value_adjusted == single.p_value  # a family of one


def test_missing_or_broken_columns_are_named() -> None:
    with pytest.raises(ValidationError, match="no column 'b'"):
        compare_frame({"a": [1.0, 2.0], "b": [1.0, 2.0]}, {"a": [1.0]})
    with pytest.raises(ValidationError, match=r"column 'a'.*all missing"):
        compare_frame({"a": [1.0, 2.0, 3.0]}, {"a": [np.nan]})


def mixed_frames(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric (with NaN and infinities), binary, few-valued, text, object and categorical
    columns; some of them changed."""
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(12):
        ref[f"x{i}"], cur[f"x{i}"] = rng.gamma(2, 1, n), rng.gamma(2 + 0.1 * (i % 3), 1, n)
    cur["x0"][::17] = np.nan
    cur["x1"][:5] = np.inf
    ref["flag"], cur["flag"] = rng.random(n) < 0.3, rng.random(n) < 0.35
    ref["count"], cur["count"] = rng.poisson(1.5, n), rng.poisson(1.6, n)
    levels = np.array(list("abcdefg"), dtype=object)
    ref["text"] = pd.Series(rng.choice(levels, n), dtype="str")
    cur["text"] = pd.Series(rng.choice(levels, n, p=[0.2] + [0.8 / 6] * 6), dtype="str")
    ref["obj"], cur["obj"] = rng.choice(levels, n), rng.choice(levels[:5], n)
    ref["cat"] = pd.Categorical(rng.choice(levels, n))
    cur["cat"] = pd.Categorical(rng.choice(levels, n))
    return pd.DataFrame(ref), pd.DataFrame(cur)


@pytest.mark.parametrize("source", ["raw", "profile"])
def test_threads_give_the_single_thread_results(source: str) -> None:
    """Every result field, bit for bit, whatever the number of threads."""
    reference, current = mixed_frames(20_000, 11)
    ref: Any = reference if source == "raw" else ReferenceProfile.from_frame(reference).features
    alone = compare_frame(ref, current, n_jobs=1)
    assert len(alone.columns) == 17 and 0 < len(alone.drifted_columns) < 17
    for n_jobs in (2, 5, -1, None):
        threaded = compare_frame(ref, current, n_jobs=n_jobs)
        assert [r.to_dict() for r in threaded.columns] == [r.to_dict() for r in alone.columns]
        assert threaded.to_dict() == alone.to_dict()
    psi = PopulationStabilityIndex()
    assert compare_frame(ref, current, tests=psi, n_jobs=3).to_dict() == compare_frame(
        ref, current, tests=psi, n_jobs=1).to_dict()


@pytest.mark.parametrize("n_jobs", [1, 3, 8])
def test_the_first_broken_column_is_named_with_or_without_threads(n_jobs: int) -> None:
    rng = np.random.default_rng(12)
    reference = {f"c{i}": rng.normal(size=5_000) for i in range(24)}
    current: dict[str, Any] = {f"c{i}": rng.normal(size=5_000) for i in range(24)}
    current["c9"], current["c15"], current["c20"] = [np.nan], [], ["text"]
    with pytest.raises(ValidationError, match=r"column 'c9'.*all missing"):
        compare_frame(reference, current, n_jobs=n_jobs)
    current["c9"] = rng.normal(size=5_000)
    with pytest.raises(ValidationError, match=r"column 'c15'.*empty"):
        compare_frame(reference, current, n_jobs=n_jobs)


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True])
def test_a_bad_n_jobs_is_refused(n_jobs: Any) -> None:
    with pytest.raises(ValidationError, match="n_jobs"):
        compare_frame({"a": [1.0, 2.0]}, {"a": [1.0]}, n_jobs=n_jobs)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_after_the_threads_started_compares_in_threads_too() -> None:
    """The helper threads start once per process and a forked child has none of them: it
    must start its own, neither waiting for the parent's nor quietly running alone."""
    reference, current = mixed_frames(20_000, 13)
    expected = compare_frame(reference, current, n_jobs=1).to_dict()
    assert compare_frame(reference, current, n_jobs=2).to_dict() == expected  # threads exist
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 2
        try:
            signal.alarm(60)  # a hang ends the child (SIGALRM) instead of the test run
            same = compare_frame(reference, current, n_jobs=2).to_dict() == expected
            threaded = any(t.name.startswith("keepwell-drift") for t in threading.enumerate())
            code = 0 if same and threaded else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while (found := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child never finished")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(found[1]) == 0
