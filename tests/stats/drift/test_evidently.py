"""PSI and the normalised Wasserstein distance against Evidently 0.7.23 itself, on the same data.

One Evidently run (``.venv-peers``, :func:`peers.run_peer`) computes, for the same raw reference
and current columns, its ``psi`` and ``wasserstein`` stattests on the values its report keeps
(NaN and infinities dropped), the cells its PSI uses (``get_binned_data`` before smoothing),
and, for the two columns with missing values, the scores of the ``Report`` itself
(``ValueDrift(method=...)``; only two columns because a report draws a figure per column and
is slow). What Evidently does, from its source (``evidently/legacy/calculations/stattests/``):

- ``wasserstein``: ``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)``.
- ``psi``: ``Σ (ref - cur) · ln(ref / cur)`` over cells: for a numeric column with more than 20
  distinct values, equal-width bins by Sturges' rule over reference and current pooled; else
  one cell per value seen in either sample. Empty cells get 1e-4, or, when a non-zero share
  of that sample is at most 1e-4, that share / 10⁶.

What the tests establish, with their tolerances:

- Wasserstein from raw reference values equals Evidently's to 1e-12 (relative; float error
  measured ~1e-15). From a profile (101 quantiles) it is within 0.02 reference standard
  deviations of Evidently's (measured here: at most 0.007).
- Categorical PSI, raw or from a profile, equals Evidently's to 1e-12 when both tools have the
  same cells and no non-zero share is at most 1e-4. Two documented differences, each checked
  exactly: keepwell pools every category the reference never saw into one cell (PSI larger by
  ``Σ s_i ln(S / s_i)`` plus terms of order 1e-4 for new shares ``s_i`` summing to ``S``), and
  keepwell floors every share at 1e-4 where Evidently switches to ``share / 10⁶`` (so a new
  category weighs far more in Evidently as soon as another category is rare).
- Numeric PSI uses other cells in each tool (keepwell: the reference's deciles, stored in the
  profile; Evidently: Sturges bins over both samples), so the values differ by design. keepwell's
  formula on Evidently's own cells equals Evidently's score to 1e-12 (same smoothing when no
  share is at most 1e-4), and keepwell's PSI from a profile equals its PSI from the raw
  reference exactly (the raw path uses the same deciles).
- A numeric column of few values (here 0/1) gets one cell per value in both tools (keepwell:
  at most 20 values, each held twice on average, plus a cell for values the reference never
  held, empty here), so the PSI of a 0/1 column is Evidently's to 1e-12, from raw values and
  from the profile. Before, keepwell's deciles collapsed to one bin and its PSI was 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keepwell.registry.profile import ColumnProfile, ReferenceProfile
from keepwell.stats.drift import PopulationStabilityIndex, Wasserstein, compare_frame
from keepwell.stats.drift.population_stability import population_stability_index
from peers import run_peer

pytestmark = pytest.mark.slow  # one Evidently run: ~10 s of CPU, most of it importing Evidently

N_REFERENCE, N_CURRENT = 10_000, 8_000
EPSILON = 1e-4  # keepwell's floor and Evidently's replacement for an empty cell

FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": lambda rng, n: rng.normal(3, 2, n),
    "lognormal": lambda rng, n: rng.lognormal(0, 1, n),
    "exponential": lambda rng, n: rng.exponential(2, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1, n),
    "gamma": lambda rng, n: rng.gamma(2, 1.5, n),
    "integers": lambda rng, n: np.round(rng.normal(40, 12, n)),
}
SHIFTS = (0.0, 0.1, 0.5)  # in reference standard deviations
NUMERIC = [f"num_{family}_{shift}" for family in FAMILIES for shift in SHIFTS] + ["num_gaps"]
SAME_CELLS = ["cat_levels", "cat_remixed", "cat_new_and_gone"]
CATEGORICAL = [*SAME_CELLS, "cat_two_new", "cat_rare_and_new"]


def levels(prefix: str, k: int) -> np.ndarray:
    return np.array([f"{prefix}{i:02d}" for i in range(k)], dtype=object)


def draw(rng: np.random.Generator, names: np.ndarray, shares: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(names, n, p=shares / shares.sum())


def make_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded raw reference and current frames, every column of NUMERIC and CATEGORICAL."""
    rng = np.random.default_rng(20_260_504)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for family, sample in FAMILIES.items():
        for shift in SHIFTS:
            a = sample(rng, N_REFERENCE)
            ref[f"num_{family}_{shift}"] = a
            cur[f"num_{family}_{shift}"] = sample(rng, N_CURRENT) + shift * a.std()
    # NaN and infinities are missing for both tools.
    a, b = rng.normal(size=N_REFERENCE), rng.normal(0.3, 1.2, N_CURRENT)
    a[rng.choice(N_REFERENCE, 300, replace=False)] = np.nan
    b[rng.choice(N_CURRENT, 200, replace=False)] = np.nan
    a[:3], b[:2] = np.inf, -np.inf
    ref["num_gaps"], cur["num_gaps"] = a, b

    # Shares well above 1e-4 unless a case says otherwise (the least is ~1 %).
    names = levels("l", 20)
    shares = rng.dirichlet(np.full(20, 5.0))
    a, b = draw(rng, names, shares, N_REFERENCE), draw(rng, names, shares, N_CURRENT)
    a[rng.choice(N_REFERENCE, 250, replace=False)] = None
    b[rng.choice(N_CURRENT, 100, replace=False)] = None
    ref["cat_levels"], cur["cat_levels"] = a, b
    mixed = 0.5 * shares + 0.5 * rng.dirichlet(np.full(20, 5.0))
    ref["cat_remixed"] = draw(rng, names, shares, N_REFERENCE)
    cur["cat_remixed"] = draw(rng, names, mixed, N_CURRENT)
    # The reference's level 17 is gone from the current data; level 18 is new there.
    names = levels("m", 19)
    shares = rng.dirichlet(np.full(19, 5.0))
    ref["cat_new_and_gone"] = draw(rng, names[:18], shares[:18], N_REFERENCE)
    cur["cat_new_and_gone"] = draw(rng, np.delete(names, 17), np.delete(shares, 17), N_CURRENT)
    # Two levels the reference never saw (keepwell pools them; Evidently does not).
    names = levels("t", 20)
    shares = np.append(rng.dirichlet(np.full(18, 5.0)) * 0.95, [0.03, 0.02])
    ref["cat_two_new"] = draw(rng, names[:18], shares[:18], N_REFERENCE)
    cur["cat_two_new"] = draw(rng, names, shares, N_CURRENT)
    # A reference level seen once (share 1 / 10,000 = 1e-4) and a level new in the current
    # data with exactly 1 % of it.
    names = levels("r", 20)
    shares = rng.dirichlet(np.full(19, 5.0))
    a = draw(rng, names[:19], shares, N_REFERENCE)
    a[0] = names[19]
    ref["cat_rare_and_new"] = a
    cur["cat_rare_and_new"] = np.append(draw(rng, names[:19], shares, N_CURRENT - 80),
                                        np.full(80, "r_new", dtype=object))
    # A 0/1 column whose share of ones goes from 0.3 to 0.6.
    ref["num_binary"] = (rng.random(N_REFERENCE) < 0.3).astype(np.float64)
    cur["num_binary"] = (rng.random(N_CURRENT) < 0.6).astype(np.float64)
    return pd.DataFrame(ref), pd.DataFrame(cur)


EVIDENTLY = """
import json
import numpy as np, pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests import psi_stat_test, wasserstein_stat_test
from evidently.legacy.calculations.stattests.utils import (
    get_binned_data, get_unique_not_nan_values_list_from_series)
from evidently.legacy.core import ColumnType
from evidently.metrics import ValueDrift

reference = pd.read_parquet(INPUT / "reference.parquet")
current = pd.read_parquet(INPUT / "current.parquet")
numeric = [c for c in reference.columns if c.startswith("num_")]
categorical = [c for c in reference.columns if c.startswith("cat_")]
scores, cells = {}, {}
for c in reference.columns:
    kind = ColumnType.Numerical if c in numeric else ColumnType.Categorical
    # What the report does before it calls a stattest (legacy/calculations/data_drift.py).
    ref = reference[c].replace([np.inf, -np.inf], np.nan).dropna()
    cur = current[c].replace([np.inf, -np.inf], np.nan).dropna()
    scores[c] = {"psi": float(psi_stat_test(ref, cur, kind, None).drift_score)}
    if kind == ColumnType.Numerical:
        scores[c]["wasserstein"] = float(wasserstein_stat_test(ref, cur, kind, None).drift_score)
    p, q = get_binned_data(ref, cur, kind, 30, feel_zeroes=False)
    cells[c] = {"reference": p.tolist(), "current": q.tolist()}
    if kind == ColumnType.Categorical:  # the key order get_binned_data used
        cells[c]["keys"] = [str(k) for k in get_unique_not_nan_values_list_from_series(cur, ref)]
# The report itself (slow: it draws figures) on the two columns with missing values.
definition = DataDefinition(numerical_columns=["num_gaps"], categorical_columns=["cat_levels"])
metrics = [ValueDrift(column="num_gaps", method="psi"),
           ValueDrift(column="num_gaps", method="wasserstein"),
           ValueDrift(column="cat_levels", method="psi")]
columns = ["num_gaps", "cat_levels"]
snapshot = Report(metrics).run(
    Dataset.from_pandas(current[columns], data_definition=definition),
    Dataset.from_pandas(reference[columns], data_definition=definition))
report = {}
for metric in snapshot.dict()["metrics"]:
    report.setdefault(metric["config"]["column"], {})[metric["config"]["method"]] = metric["value"]
print(json.dumps({"scores": scores, "cells": cells, "report": report}))
"""


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frames()


@pytest.fixture(scope="module")
def evidently(frames: tuple[pd.DataFrame, pd.DataFrame],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reference, current = frames
    result: dict[str, Any] = run_peer(EVIDENTLY, tmp_path_factory.mktemp("evidently"),
                                      reference=reference, current=current)
    return result


@pytest.fixture(scope="module")
def profile(frames: tuple[pd.DataFrame, pd.DataFrame]) -> Mapping[str, ColumnProfile]:
    return ReferenceProfile.from_frame(frames[0]).features


def score(evidently: dict[str, Any], column: str, method: str) -> float:
    return float(evidently["scores"][column][method])


def cells(evidently: dict[str, Any], column: str) -> tuple[np.ndarray, np.ndarray]:
    found = evidently["cells"][column]
    return np.array(found["reference"]), np.array(found["current"])


def least_share(*shares: np.ndarray) -> float:
    return min(float(s[s > 0].min()) for s in shares)


# --- Wasserstein --------------------------------------------------------------------------


def test_wasserstein_from_raw_reference_values_is_evidentlys(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any]) -> None:
    reference, current = frames
    verdict = compare_frame(reference, current, tests=Wasserstein(alpha=None), columns=NUMERIC)
    for column in NUMERIC:
        assert verdict[column].statistic == pytest.approx(
            score(evidently, column, "wasserstein"), rel=1e-12), column


def test_wasserstein_from_a_profile_within_two_hundredths_of_a_std(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any],
        profile: Mapping[str, ColumnProfile]) -> None:
    current = frames[1]
    verdict = compare_frame(profile, current, tests=Wasserstein(alpha=None), columns=NUMERIC)
    errors = {c: verdict[c].statistic - score(evidently, c, "wasserstein") for c in NUMERIC}
    assert max(abs(e) for e in errors.values()) <= 0.02, errors


def test_the_reports_scores_on_columns_with_missing_values(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any]) -> None:
    """Through Evidently's ``Report``: NaN, None and infinities are missing in both tools."""
    reference, current = frames
    report = evidently["report"]
    for test, column in ((Wasserstein(alpha=None), "num_gaps"),
                         (PopulationStabilityIndex(alpha=None), "cat_levels")):
        ours = test.compare(reference[column], current[column]).statistic
        assert ours == pytest.approx(report[column][test.name], rel=1e-12), column
    # keepwell's numeric PSI bins differently (see below); Evidently's report = its stattest.
    assert report["num_gaps"]["psi"] == pytest.approx(score(evidently, "num_gaps", "psi"),
                                                      rel=1e-12)


# --- PSI, categorical ---------------------------------------------------------------------


@pytest.mark.parametrize("column", SAME_CELLS)
def test_categorical_psi_is_evidentlys_from_raw_values_and_from_a_profile(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any],
        profile: Mapping[str, ColumnProfile], column: str) -> None:
    reference, current = frames
    assert least_share(*cells(evidently, column)) > EPSILON  # the cases where both smooth alike
    psi = PopulationStabilityIndex(alpha=None)
    expected = score(evidently, column, "psi")
    assert psi.compare(reference[column], current[column]).statistic == pytest.approx(
        expected, rel=1e-12)
    assert psi.compare(profile[column], current[column]).statistic == pytest.approx(
        expected, rel=1e-12)


def test_psi_pools_the_categories_the_reference_never_saw(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any]) -> None:
    """Evidently gives each new category a cell; keepwell one cell for all (the profile's
    "other" cell). For new current shares ``s_i`` summing to ``S`` (reference share floored at
    ε on both sides), keepwell's PSI is larger by exactly
    ``Σ s_i ln(S / s_i) + ε (Σ ln(s_i / ε) - ln(S / ε))``."""
    reference, current = frames
    column = "cat_two_new"
    p, q = cells(evidently, column)
    keys = evidently["cells"][column]["keys"]
    new = np.array([q[i] for i, key in enumerate(keys) if key in {"t18", "t19"}])
    assert new.size == 2 and (p[np.isin(keys, ["t18", "t19"])] == 0).all()
    total = new.sum()
    gap = float(np.sum(new * np.log(total / new))
                + EPSILON * (np.sum(np.log(new / EPSILON)) - np.log(total / EPSILON)))
    ours = PopulationStabilityIndex(alpha=None).compare(reference[column], current[column])
    assert ours.statistic - score(evidently, column, "psi") == pytest.approx(gap, rel=1e-9)
    assert 0.02 < gap <= total * np.log(2) + 1e-3  # about S·ln(number of new categories)


def test_evidentlys_smoothing_jumps_when_a_share_is_at_most_1e_4(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any]) -> None:
    """A reference category seen once (share 1e-4) makes Evidently fill the reference's empty
    cells with 1e-10 instead of 1e-4: a new category with 1 % of the current data then adds
    ``0.01 · ln(0.01 / 1e-10) ≈ 0.18`` to Evidently's PSI, and ``0.01 · ln(0.01 / 1e-4) ≈
    0.046`` to keepwell's, which floors every share at 1e-4 whatever the others are."""
    reference, current = frames
    column = "cat_rare_and_new"
    p, q = cells(evidently, column)
    assert least_share(p) == pytest.approx(1 / N_REFERENCE)
    ours = PopulationStabilityIndex(alpha=None).compare(reference[column], current[column])
    assert ours.statistic == pytest.approx(population_stability_index(p, q), rel=1e-12)
    filled = least_share(p) / 1e6  # Evidently's reference share of the new category
    jump = (0.01 - filled) * np.log(0.01 / filled) - (0.01 - EPSILON) * np.log(0.01 / EPSILON)
    assert score(evidently, column, "psi") - ours.statistic == pytest.approx(jump, rel=1e-9)


# --- PSI, numeric -------------------------------------------------------------------------


def test_numeric_psi_formula_on_evidentlys_own_cells_is_evidentlys(
        evidently: dict[str, Any]) -> None:
    """Where no share is at most 1e-4 both tools smooth alike, and the formula agrees."""
    compared = []
    for column in NUMERIC:
        p, q = cells(evidently, column)
        if least_share(p, q) > EPSILON:
            assert population_stability_index(p, q) == pytest.approx(
                score(evidently, column, "psi"), rel=1e-12), column
            compared.append(column)
    assert len(compared) >= 6, compared


def test_numeric_psi_is_over_the_reference_deciles_from_raw_values_or_a_profile(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any],
        profile: Mapping[str, ColumnProfile]) -> None:
    """The same value from raw reference values and from the profile; not Evidently's, whose
    equal-width bins over both samples put most of a long-tailed column in one or two bins:
    a half-standard-deviation shift of a lognormal gives Evidently's PSI 0.10 here (0.02 with
    another seed: the bins follow the largest value), under half what the same shift of a
    normal gives, and keepwell's, over deciles, about 4 (half the deciles emptied). Both stay
    under 0.02 on unchanged columns."""
    reference, current = frames
    psi = PopulationStabilityIndex(alpha=None)
    ours = {}
    for column in NUMERIC:
        raw = psi.compare(reference[column], current[column]).statistic
        assert psi.compare(profile[column], current[column]).statistic == pytest.approx(
            raw, rel=1e-12), column
        ours[column] = raw
    theirs = {c: score(evidently, c, "psi") for c in NUMERIC}
    for family in FAMILIES:
        unchanged, shifted = f"num_{family}_0.0", f"num_{family}_0.5"
        assert max(ours[unchanged], theirs[unchanged]) < 0.02, family
        assert ours[shifted] >= 0.1, family
    assert theirs["num_lognormal_0.5"] < 0.5 * theirs["num_normal_0.5"]
    assert ours["num_lognormal_0.5"] > 1


def test_numeric_psi_sees_a_two_valued_column_change(
        frames: tuple[pd.DataFrame, pd.DataFrame], evidently: dict[str, Any],
        profile: Mapping[str, ColumnProfile]) -> None:
    """0/1 values with the share of ones going from 0.3 to 0.6: Evidently (one cell per value
    when a numeric column has at most 20) gives PSI 0.40. keepwell's cells are the same, {0}
    and {1}, from raw values and from the profile's levels (its decile edges are (0, 1), one
    bin, which gave PSI 0), plus an empty cell for other values, so the two agree exactly."""
    reference, current = frames
    column = "num_binary"
    expected = score(evidently, column, "psi")
    assert expected > 0.3
    psi = PopulationStabilityIndex(alpha=None)
    assert psi.compare(reference[column], current[column]).statistic == pytest.approx(
        expected, rel=1e-12)
    assert psi.compare(profile[column], current[column]).statistic == pytest.approx(
        expected, rel=1e-12)
