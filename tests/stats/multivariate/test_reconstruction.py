"""PCA reconstruction drift against NannyML's DataReconstructionDriftCalculator on the same data.

Tolerance: the per-chunk mean errors, the thresholds and the number of components agree with
NannyML's to 1e-9 relative. Both compute the same float64 quantities (the same imputation,
count encoding, standardisation and PCA, by scikit-learn's covariance-eigh solver there and
numpy's eigh here); they differ only in summation order, about 1e-13 relative, and 1e-9
leaves room for a less well-conditioned spectrum. The alert flags agree exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keepwell.errors import InvalidStateError, ValidationError
from keepwell.stats.multivariate import ReconstructionDrift, ReconstructionResult
from peers import run_peer


def mixed(n: int, seed: int, *, sign: float = 1.0) -> pd.DataFrame:
    """Two correlated normals (``sign`` flips their correlation, not their marginals), a
    skewed column with gaps, integers, a boolean, and two categoricals (one with gaps, one
    tied to ``a``)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = sign * 0.8 * a + 0.6 * rng.normal(size=n)
    c = rng.lognormal(size=n)
    c[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(np.array(["basic", "plus", "pro"], dtype=object), n, p=[0.5, 0.3, 0.2])
    plan[rng.random(n) < 0.05] = None
    return pd.DataFrame({
        "a": a, "b": b, "c": c, "visits": rng.poisson(3, n), "member": rng.random(n) < 0.3,
        "plan": plan, "side": np.where(a > 0, "up", "down").astype(object)})


def test_matches_nannyml(tmp_path: Path) -> None:
    reference = mixed(3_007, 1)  # 10 chunks of 300 rows and NannyML's remainder chunk of 7
    analysis = pd.concat([mixed(1_000, 2), mixed(1_000, 3, sign=-1.0)], ignore_index=True)
    theirs = run_peer("""
        import json
        import numpy as np, pandas as pd
        import nannyml as nml
        reference = pd.read_parquet(INPUT / "reference.parquet")
        analysis = pd.read_parquet(INPUT / "analysis.parquet")
        # Parquet reads missing strings back as None, which SimpleImputer(missing_values=nan)
        # does not see as missing (NannyML would count-encode it as a category of its own);
        # NaN, as pandas reads a CSV, is imputed as NannyML documents
        for frame in (reference, analysis):
            frame["plan"] = frame["plan"].astype(object).where(frame["plan"].notna(), np.nan)
        columns = list(reference.columns)
        out = {}
        default = nml.DataReconstructionDriftCalculator(column_names=columns).fit(reference)
        data = default.result.data
        out["reference"] = data[("reconstruction_error", "value")].tolist()
        out["default"] = [default.lower_threshold_value, default.upper_threshold_value,
                          int(default._pca.n_components_)]
        sized = nml.DataReconstructionDriftCalculator(column_names=columns, chunk_size=500)
        data = sized.fit(reference).calculate(analysis).filter(period="analysis").data
        out["analysis"] = data[("reconstruction_error", "value")].tolist()
        out["alerts"] = [bool(x) for x in data[("reconstruction_error", "alert")]]
        out["sized"] = [sized.lower_threshold_value, sized.upper_threshold_value]
        print(json.dumps(out))
    """, tmp_path, reference=reference, analysis=analysis)

    default = ReconstructionDrift().fit(reference)
    assert default.reference_errors_ == pytest.approx(theirs["reference"], rel=1e-9)
    lower, upper, k = theirs["default"]
    assert default.lower_threshold_ == pytest.approx(lower, rel=1e-9)
    assert default.upper_threshold_ == pytest.approx(upper, rel=1e-9)
    assert default.components_.shape == (k, reference.shape[1])

    sized = ReconstructionDrift(chunk_size=500).fit(reference)
    assert [sized.lower_threshold_, sized.upper_threshold_] == pytest.approx(theirs["sized"],
                                                                             rel=1e-9)
    results = [sized.score(analysis.iloc[i:i + 500]) for i in range(0, 2_000, 500)]
    assert [r.error for r in results] == pytest.approx(theirs["analysis"], rel=1e-9)
    assert [r.drifted for r in results] == theirs["alerts"] == [False, False, True, True]


def correlated(n: int, rng: np.random.Generator, rho: float) -> pd.DataFrame:
    """Standard normal a and b with correlation ``rho``: the marginals never change."""
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": rng.normal(size=n)})


def test_correlation_flip_drifts_where_univariate_tests_do_not() -> None:
    rng = np.random.default_rng(7)
    reference, window = correlated(5_000, rng, 0.8), correlated(500, rng, -0.8)
    for column in window:  # every marginal is unchanged: KS sees nothing
        assert stats.ks_2samp(reference[column], window[column]).pvalue > 0.05
    detector = ReconstructionDrift(chunk_size=500).fit(reference)
    result = detector.score(window)
    assert result.drifted and result.error > detector.upper_threshold_
    assert not detector.score(correlated(500, rng, 0.8)).drifted


def test_same_distribution_windows_rarely_drift() -> None:
    # 20 references (10 chunks of 500 each) x 3 windows of 500: the band is mean ± 3 sd of
    # ten chunk errors, whose sd is itself uncertain; over 1,500 such windows the alarm
    # rate was 2.6 %, and it stays at or under 10 % here
    alarms = 0
    for seed in range(20):
        detector = ReconstructionDrift(chunk_size=500).fit(mixed(5_000, seed))
        alarms += sum(detector.score(mixed(500, 1_000 + 3 * seed + k)).drifted
                      for k in range(3))
    assert alarms <= 6


def test_serialised_detector_scores_identically() -> None:
    reference, window = mixed(2_000, 11), mixed(300, 12, sign=-1.0)
    detector = ReconstructionDrift().fit(reference)
    stored = json.loads(json.dumps(detector.to_dict()))
    restored = ReconstructionDrift.from_dict(stored)
    assert restored.score(window) == detector.score(window)
    assert restored.score(reference) == detector.score(reference)
    assert restored.to_dict() == stored
    assert {c["name"]: c["kind"] for c in stored["columns"]} == {
        "a": "numeric", "b": "numeric", "c": "numeric", "visits": "numeric",
        "member": "categorical", "plan": "categorical", "side": "categorical"}


def test_result_is_json_safe_and_reads_the_band() -> None:
    detector = ReconstructionDrift(chunk_size=100).fit(mixed(1_000, 3))
    result = detector.score(mixed(1, 4))
    assert isinstance(result, ReconstructionResult)
    assert result.n == 1 and result.error_std is None and result.sampling_error is None
    data = json.loads(json.dumps(result.to_dict()))
    assert data["upper_threshold"] == detector.upper_threshold_
    assert data["n_components"] == detector.components_.shape[0]


def test_encoding_follows_the_imputed_reference() -> None:
    reference = pd.DataFrame({"x": [1.0, np.nan, 3.0, 5.0] * 10,
                              "k": ["b", "a", None, "a"] * 5 + ["b", "b", None, "a"] * 5})
    detector = ReconstructionDrift(n_components=1).fit(reference)
    x, k = detector.to_dict()["columns"]
    assert x["fill"] == 3.0
    # a and b are tied at 15; the smaller is the mode, which takes the 10 missing rows too
    assert k["fill"] == "a"
    assert dict(zip(k["categories"], k["shares"], strict=True)) == {"a": 25 / 40, "b": 15 / 40}
    # an unseen category encodes as 0, far from every reference share: a large error
    unseen = detector.score(pd.DataFrame({"x": [3.0] * 20, "k": ["zzz"] * 20}))
    assert unseen.drifted


def test_extra_columns_and_column_order_do_not_matter() -> None:
    reference = mixed(1_000, 5)
    detector = ReconstructionDrift().fit(reference, columns=["c", "a", "b"])
    window = mixed(200, 6)
    shuffled = window.assign(extra="x")[["b", "extra", "a", "c"]]
    assert detector.score(shuffled) == detector.score(window)


@pytest.mark.parametrize(("frame", "columns", "message"), [
    (pd.DataFrame({"a": []}), None, "no rows"),
    (pd.DataFrame({"a": np.arange(30.0)}), ["a", "z"], "no column 'z'"),
    (pd.DataFrame({"a": np.arange(30.0), "z": np.nan}), None, "'z' is all missing"),
    (pd.DataFrame({"a": np.arange(30.0), "z": [None] * 30}), None, "'z' is all missing"),
    (pd.DataFrame({"a": np.arange(19.0)}), None, "19 rows are too few"),
    (pd.DataFrame({"a": np.ones(30)}), None, "every reference column is constant"),
])
def test_bad_reference_is_refused(frame: pd.DataFrame, columns: list[str] | None,
                                  message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReconstructionDrift().fit(frame, columns)


@pytest.mark.parametrize(("params", "message"), [
    ({"n_components": 1.5}, "n_components as a float"),
    ({"n_components": 0}, "at least 1"),
    ({"n_components": 3}, "more than the 2"),
    ({"std_multiplier": -1.0}, "std_multiplier"),
    ({"chunk_size": 1}, "chunk_size"),
    ({"chunk_size": 16}, "needs at least 32"),
])
def test_bad_parameters_are_refused(params: dict[str, float], message: str) -> None:
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) ** 2})
    with pytest.raises(ValidationError, match=message):
        ReconstructionDrift(**params).fit(frame)


def test_bad_current_data_is_refused() -> None:
    detector = ReconstructionDrift().fit(mixed(500, 1))
    with pytest.raises(ValidationError, match="no column 'plan'"):
        detector.score(mixed(50, 2).drop(columns="plan"))
    with pytest.raises(ValidationError, match="no rows"):
        detector.score(mixed(50, 2).iloc[:0])
    with pytest.raises(ValidationError, match="'a' is numeric in the reference"):
        detector.score(mixed(50, 2).assign(a="text"))
    with pytest.raises(InvalidStateError, match="not fitted"):
        ReconstructionDrift().score(mixed(50, 2))
    with pytest.raises(ValidationError, match="not a stored reconstruction"):
        ReconstructionDrift.from_dict({"method": "psi"})
    stored = detector.to_dict()
    del stored["components"]
    with pytest.raises(ValidationError, match="malformed"):
        ReconstructionDrift.from_dict(stored)
