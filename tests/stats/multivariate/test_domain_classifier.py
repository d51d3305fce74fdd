"""The domain classifier against scikit-learn, a bootstrap, and NannyML's domain classifier.

Tolerances:

- the AUC equals ``sklearn.metrics.roc_auc_score`` on the same labels and scores to 1e-12
  (both count ties one half; they differ only in rounding);
- DeLong's standard error is within 5 % of a 2,000-replicate stratified bootstrap's: the
  bootstrap's estimate of a standard deviation is itself off by about ``1 / √(2 · 2000)``
  ≈ 1.6 % relative, so 5 % is three of those (measured: within 2 %);
- NannyML trains LightGBM (100 trees, unshuffled folds) where we train scikit-learn's
  histogram gradient boosting (early stopping, shuffled folds), so the two AUCs on the same
  rows are two different classifiers' estimates of the same separability. On the clear
  shift both are close to the best possible AUC and agree within 0.02 (measured: 0.002).
  With no shift both are 0.5 plus fitting noise whose standard deviation, over seeded
  trials, is about 1.1 DeLong standard errors (0.008 at 4,000 vs 2,000 rows); the
  difference of two such estimates has a standard deviation of about 0.013 and 0.03 is 2.3
  of them (measured: 0.019).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from keepwell.errors import ValidationError
from keepwell.stats.multivariate import DomainClassifierDrift, DomainClassifierResult, delong_auc
from peers import run_peer


def mixed(n: int, seed: int, *, sign: float = 1.0) -> pd.DataFrame:
    """Two correlated normals (``sign`` flips their correlation, not their marginals), a
    skewed column with gaps, integers, and a categorical with gaps."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = sign * 0.8 * a + 0.6 * rng.normal(size=n)
    c = rng.lognormal(size=n)
    c[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(np.array(["basic", "plus", "pro"], dtype=object), n, p=[0.5, 0.3, 0.2])
    plan[rng.random(n) < 0.05] = None
    return pd.DataFrame({"a": a, "b": b, "c": c, "visits": rng.poisson(3, n), "plan": plan})


def correlated(n: int, rng: np.random.Generator, rho: float) -> pd.DataFrame:
    """Standard normal a and b with correlation ``rho``: the marginals never change."""
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)})


# -- the AUC and its interval ---------------------------------------------------------------


@pytest.mark.parametrize(("n_pos", "n_neg", "levels"), [
    (2, 2, 0), (7, 30, 3), (300, 500, 0), (1_000, 800, 20), (5_000, 5_000, 2)])
def test_auc_equals_sklearn(n_pos: int, n_neg: int, levels: int) -> None:
    rng = np.random.default_rng(n_pos + n_neg)
    scores = np.concatenate([rng.normal(0.5, 1, n_pos), rng.normal(0, 1, n_neg)])
    if levels:  # coarse scores: many ties, within and across the classes
        scores = np.round(scores * levels / 4)
    labels = np.repeat([1, 0], [n_pos, n_neg])
    order = rng.permutation(labels.size)
    auc, _ = delong_auc(labels[order], scores[order])
    assert auc == pytest.approx(roc_auc_score(labels[order], scores[order]), abs=1e-12)


@pytest.mark.parametrize(("shift", "levels"), [(0.0, 0), (0.6, 0), (2.0, 0), (0.6, 3)])
def test_delong_standard_error_matches_a_bootstrap(shift: float, levels: int) -> None:
    rng = np.random.default_rng(3)
    n_pos, n_neg = 400, 600
    scores = np.concatenate([rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)])
    if levels:
        scores = np.round(scores * levels)
    labels = np.repeat([1, 0], [n_pos, n_neg])
    _, variance = delong_auc(labels, scores)
    # stratified bootstrap (positives and negatives resampled separately): a replicate is
    # the AUC with each score weighted by how often it was drawn, w·H·v / (m·n), where
    # H[i, j] = 1, 1/2, 0 as positive i scores above, level with, below negative j
    pos, neg = scores[:n_pos], scores[n_pos:]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    reps = 2_000
    w = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=reps)
    v = rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=reps)
    boot = np.einsum("ri,ij,rj->r", w, wins, v, optimize=True) / (n_pos * n_neg)
    assert boot.mean() == pytest.approx(roc_auc_score(labels, scores), abs=0.005)
    assert np.sqrt(variance) == pytest.approx(boot.std(ddof=1), rel=0.05)


def test_delong_auc_refuses_bad_labels() -> None:
    with pytest.raises(ValidationError, match="two rows of each class"):
        delong_auc([1, 1, 1, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValidationError, match="0 or 1"):
        delong_auc([2, 1, 0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValidationError, match="one length"):
        delong_auc([1, 0], [0.1])


# -- against NannyML ------------------------------------------------------------------------


def test_auc_agrees_with_nannyml(tmp_path: Path) -> None:
    reference = mixed(4_000, 11)
    same, flipped = mixed(2_000, 12), mixed(2_000, 13, sign=-1.0)
    theirs = run_peer("""
        import json
        import pandas as pd
        import nannyml as nml
        from nannyml.drift.multivariate.domain_classifier.calculator import (
            DEFAULT_LGBM_HYPERPARAMS)
        reference = pd.read_parquet(INPUT / "reference.parquet")
        # NannyML's default model on one thread, so it does not oversubscribe shared cores
        params = {**DEFAULT_LGBM_HYPERPARAMS, "n_jobs": 1, "verbose": -1}
        # one fit, and the two 2,000-row windows as two chunks of one analysis frame
        current = pd.read_parquet(INPUT / "current.parquet")
        calc = nml.DomainClassifierCalculator(
            feature_column_names=list(reference.columns), chunk_size=2_000,
            hyperparameters=params).fit(reference)
        data = calc.calculate(current).filter(period="analysis").data
        same, flipped = data[("domain_classifier_auroc", "value")].tolist()
        out = {"same": same, "flipped": flipped}
        print(json.dumps(out))
    """, tmp_path, reference=reference,
                      current=pd.concat([same, flipped], ignore_index=True))
    test = DomainClassifierDrift()
    ours_same, ours_flipped = test.compare(reference, same), test.compare(reference, flipped)
    assert ours_same.auc == pytest.approx(theirs["same"], abs=0.03)
    assert ours_flipped.auc == pytest.approx(theirs["flipped"], abs=0.02)
    assert not ours_same.drifted and ours_flipped.drifted
    assert ours_flipped.auc > 0.85


# -- behaviour ------------------------------------------------------------------------------


def test_same_distribution_does_not_drift() -> None:
    test = DomainClassifierDrift(max_iter=30)
    results = [test.compare(mixed(300, seed), mixed(300, 100 + seed)) for seed in range(8)]
    assert not any(r.drifted for r in results)
    assert abs(np.mean([r.auc for r in results]) - 0.5) < 0.03


def test_correlation_flip_drifts_where_univariate_tests_do_not() -> None:
    rng = np.random.default_rng(7)
    reference, current = correlated(1_000, rng, 0.8), correlated(1_000, rng, -0.8)
    for column in current:
        assert stats.ks_2samp(reference[column], current[column]).pvalue > 0.05
    result = DomainClassifierDrift().compare(reference, current)
    assert result.drifted and result.auc_lower > 0.8


def test_categorical_changes_drift() -> None:
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"x": rng.normal(size=800),
                              "k": rng.choice(["a", "b", "c"], 800, p=[0.6, 0.3, 0.1])})
    shares = pd.DataFrame({"x": rng.normal(size=800),
                           "k": rng.choice(["a", "b", "c"], 800, p=[0.3, 0.3, 0.4])})
    assert DomainClassifierDrift().compare(reference, shares).drifted
    # 400 categories (more than the classifier's 255: the rarest are pooled), and half the
    # current rows in a category the reference never had: those are recognisable, the other
    # half not, so the best possible AUC is 0.5 · 1 + 0.5 · 0.5 = 0.75
    def many(seed: int) -> pd.DataFrame:
        gen = np.random.default_rng(seed)
        return pd.DataFrame({"x": gen.normal(size=800), "k": gen.integers(0, 400, 800)})

    novel = many(2)
    novel.loc[: len(novel) // 2 - 1, "k"] = -1
    test = DomainClassifierDrift(categorical=["k"])
    assert not test.compare(many(1), many(3)).drifted
    result = test.compare(many(1), novel)
    assert result.drifted and 0.6 < result.auc < 0.78


def test_result_is_deterministic_subsampled_and_json_safe() -> None:
    reference, current = mixed(1_500, 1), mixed(900, 2, sign=-1.0)
    test = DomainClassifierDrift(max_rows=600, max_iter=30, random_state=4)
    result = test.compare(reference, current)
    assert isinstance(result, DomainClassifierResult)
    assert result == test.compare(reference, current)
    assert (result.n_reference, result.n_current, result.subsampled) == (600, 600, True)
    assert result.auc_lower <= result.auc <= result.auc_upper
    z = stats.norm.ppf(0.975)
    assert result.auc_lower == pytest.approx(result.auc - z * result.standard_error)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["drifted"] is True and data["threshold"] == 0.55
    full = DomainClassifierDrift(max_rows=None, max_iter=30).compare(reference, current)
    assert (full.n_reference, full.n_current, full.subsampled) == (1_500, 900, False)


def test_an_all_missing_current_column_is_drift_not_an_error() -> None:
    reference = mixed(500, 1)
    result = DomainClassifierDrift(max_iter=30).compare(reference, mixed(500, 2).assign(c=np.nan))
    assert result.drifted and result.auc > 0.9


@pytest.mark.parametrize(("current", "message"), [
    (mixed(500, 2).drop(columns="plan"), "current: the frame has no column 'plan'"),
    (mixed(500, 2).iloc[:0], "current: the frame has no rows"),
    (mixed(9, 2), "current: 9 rows are too few"),
    (mixed(500, 2).assign(a="text"), "'a' is numeric in the reference"),
])
def test_bad_current_data_is_refused(current: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DomainClassifierDrift().compare(mixed(500, 1), current)


def test_bad_reference_and_parameters_are_refused() -> None:
    current = mixed(100, 2)
    with pytest.raises(ValidationError, match="'c' is all missing"):
        DomainClassifierDrift().compare(mixed(100, 1).assign(c=np.nan), current)
    with pytest.raises(ValidationError, match="'plan' is all missing"):
        DomainClassifierDrift().compare(mixed(100, 1).assign(plan=None), current)
    with pytest.raises(ValidationError, match="categorical names 'zzz'"):
        DomainClassifierDrift(categorical=["zzz"]).compare(mixed(100, 1), current)
    for params, message in [({"threshold": 0.4}, "threshold"), ({"confidence": 1.0},
                            "confidence"), ({"n_folds": 1}, "n_folds"),
                            ({"max_rows": 5}, "max_rows"), ({"max_iter": 0}, "max_iter"),
                            ({"random_state": None}, "random_state"),
                            ({"categorical": "plan"}, "list of column names")]:
        with pytest.raises(ValidationError, match=message):
            DomainClassifierDrift(**params).compare(mixed(100, 1), current)  # type: ignore[arg-type]
