"""Fairness metrics against Fairlearn (``MetricFrame``, ``selection_rate``, ``true_positive_rate``,
``false_positive_rate``, ``demographic_parity_difference`` / ``_ratio``,
``equalized_odds_difference`` / ``_ratio``) on the same data, in-process.

Tolerance: 1e-12 absolute for every rate, difference and ratio (both sides divide the same
integer counts; in practice they agree exactly). Fairlearn compares every group, so where
``min_group_size`` leaves groups out, Fairlearn runs on the rows of the compared groups only.
Where the two differ on purpose (a rate with a zero denominator, fewer than two groups, the
equalized odds ratio when every TPR is 0) the tests show both answers.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score

from keepwell.errors import ValidationError
from keepwell.stats.fairness import FOUR_FIFTHS, FairnessReport, fairness_report

ACS = Path(__file__).resolve().parents[2] / "data" / "acs-employment-ma"
TOL = 1e-12


def close(ours: float, theirs: Any) -> bool:
    return math.isclose(ours, float(theirs), rel_tol=0.0, abs_tol=TOL)


def metric_frame(y_pred: Any, sensitive: Any, y_true: Any = None, positive: Any = 1
                 ) -> MetricFrame:
    """Fairlearn's per-group view; without labels ``y_true`` is a stand-in ``selection_rate``
    ignores."""
    metrics: dict[str, Any] = {
        "count": count, "selection_rate": partial(selection_rate, pos_label=positive)}
    if y_true is not None:
        metrics |= {
            "accuracy": accuracy_score,
            "true_positive_rate": partial(true_positive_rate, pos_label=positive),
            "false_positive_rate": partial(false_positive_rate, pos_label=positive),
            "precision": partial(precision_score, pos_label=positive, zero_division=np.nan)}
    return MetricFrame(metrics=metrics, y_true=y_pred if y_true is None else y_true,
                       y_pred=y_pred, sensitive_features=sensitive)


def assert_groups_agree(report: FairnessReport, frame: MetricFrame) -> None:
    by_group = frame.by_group.dropna(subset=["count"])  # Fairlearn lists absent combinations
    assert len(report.groups) == len(by_group)
    for group in report.groups:
        theirs = by_group.loc[group.key if len(group.key) > 1 else group.key[0]]
        assert group.count == theirs["count"]
        for name in ("selection_rate", "accuracy", "true_positive_rate", "false_positive_rate",
                     "precision"):
            if name in theirs:
                assert close(getattr(group, name), theirs[name]), (group.key, name)


def assert_gaps_agree(report: FairnessReport, y_pred: Any, sensitive: Any,
                      y_true: Any = None, positive: Any = 1) -> None:
    """Between-group statistics equal Fairlearn's (every group compared)."""
    frame = metric_frame(y_pred, sensitive, y_true, positive)
    assert_groups_agree(report, frame)
    assert report.n == len(y_pred)
    assert close(report.selection_rate, frame.overall["selection_rate"])
    difference, ratio = frame.difference(), frame.ratio()
    assert close(report.demographic_parity_difference, difference["selection_rate"])
    assert close(report.disparate_impact_ratio, ratio["selection_rate"])
    if positive == 1 and isinstance(positive, int):  # Fairlearn's functions assume 0/1
        stand_in = y_pred if y_true is None else y_true
        assert close(report.demographic_parity_difference,
                     demographic_parity_difference(stand_in, y_pred, sensitive_features=sensitive))
        assert close(report.disparate_impact_ratio,
                     demographic_parity_ratio(stand_in, y_pred, sensitive_features=sensitive))
    if y_true is None:
        assert not report.has_labels and math.isnan(report.equalized_odds_difference)
        return
    assert close(report.accuracy, frame.overall["accuracy"])
    for rate in ("true_positive_rate", "false_positive_rate"):
        assert close(getattr(report, f"{rate}_difference"), difference[rate])
        assert close(getattr(report, f"{rate}_ratio"), ratio[rate])
    if positive == 1 and isinstance(positive, int):
        expected_difference = equalized_odds_difference(y_true, y_pred,
                                                        sensitive_features=sensitive)
        expected_ratio = equalized_odds_ratio(y_true, y_pred, sensitive_features=sensitive)
    else:  # what equalized_odds_difference / _ratio compute, with pos_label passed through
        expected_difference = max(difference[["true_positive_rate", "false_positive_rate"]])
        expected_ratio = min(ratio[["true_positive_rate", "false_positive_rate"]])
    assert close(report.equalized_odds_difference, expected_difference)
    assert close(report.equalized_odds_ratio, expected_ratio)


def report_all(*args: Any, **kwargs: Any) -> FairnessReport:
    """Every group compared, as Fairlearn does."""
    return fairness_report(*args, min_group_size=1, **kwargs)


def decisions(rng: np.random.Generator, groups: np.ndarray, shift: dict[Any, float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Labels at 45 %, decisions that follow them, with a per-group push."""
    y_true = (rng.random(groups.size) < 0.45).astype(np.int64)
    push = np.array([shift.get(g, 0.0) for g in groups])
    y_pred = (rng.random(groups.size) < 0.2 + 0.5 * y_true + push).astype(np.int64)
    return y_pred, y_true


# -- agreement on seeded data ----------------------------------------------------------------

def test_binary_sensitive_feature() -> None:
    rng = np.random.default_rng(1)
    sex = rng.choice(["f", "m"], 3_000, p=[0.4, 0.6])
    y_pred, y_true = decisions(rng, sex, {"f": -0.1})
    report = report_all(y_pred, pd.Series(sex, name="sex"), y_true=y_true)
    assert report.features == ("sex",) and [g.key for g in report.groups] == [("f",), ("m",)]
    assert_gaps_agree(report, y_pred, sex, y_true)


def test_five_groups_of_different_sizes() -> None:
    rng = np.random.default_rng(2)
    group = rng.choice(np.arange(5), 4_000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    y_pred, y_true = decisions(rng, group, {1: 0.05, 3: -0.15, 4: 0.1})
    report = report_all(y_pred, group, y_true=y_true)
    assert [g.key for g in report.groups] == [(0,), (1,), (2,), (3,), (4,)]
    assert_gaps_agree(report, y_pred, group, y_true)
    assert report.four_fifths_violation == (report.disparate_impact_ratio < FOUR_FIFTHS)


def test_two_sensitive_columns_make_intersectional_groups() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], n),
                          "race": rng.choice([1, 2, 6, 8], n, p=[0.7, 0.1, 0.1, 0.1])})
    frame = frame[~((frame["sex"] == "f") & (frame["race"] == 8))]  # a combination absent
    y_pred, y_true = decisions(rng, frame["race"].to_numpy(), {2: -0.1, 6: 0.05})
    report = report_all(y_pred, frame, y_true=y_true)
    assert report.features == ("sex", "race") and len(report.groups) == 7
    assert report.groups[0].key == ("f", 1) and report.groups[-1].key == ("m", 8)
    assert_gaps_agree(report, y_pred, frame, y_true)
    # a mapping of columns is the same thing
    columns = {"sex": frame["sex"].to_numpy(), "race": frame["race"].to_numpy()}
    same = report_all(y_pred, columns, y_true=y_true)
    assert same.to_dict() == report.to_dict()


def test_string_labels_with_a_named_positive() -> None:
    rng = np.random.default_rng(4)
    region = rng.choice(["north", "south", "east"], 3_000)
    y_pred, y_true = decisions(rng, region, {"east": -0.12})
    as_text = np.array(["declined", "approved"])
    report = report_all(as_text[y_pred], region, y_true=as_text[y_true], positive="approved")
    assert_gaps_agree(report, as_text[y_pred], region, as_text[y_true], positive="approved")
    assert report.to_dict() == {**report_all(y_pred, region, y_true=y_true).to_dict(),
                                "positive": "approved"}


def test_boolean_decisions() -> None:
    rng = np.random.default_rng(5)
    group = rng.choice(["a", "b", "c"], 3_000)
    y_pred, y_true = decisions(rng, group, {"b": 0.2})
    report = report_all(y_pred.astype(bool), group, y_true=y_true.astype(bool), positive=True)
    assert_gaps_agree(report, y_pred.astype(bool), group, y_true.astype(bool), positive=True)


def test_categorical_groups_in_category_order() -> None:
    rng = np.random.default_rng(15)
    group = pd.Series(pd.Categorical(rng.choice(["low", "mid", "high"], 3_000),
                                     categories=["low", "mid", "high", "unused"]))
    y_pred, y_true = decisions(rng, group.to_numpy(), {"high": 0.2})
    report = report_all(y_pred, group, y_true=y_true)
    assert [g.key for g in report.groups] == [("low",), ("mid",), ("high",)]
    assert_gaps_agree(report, y_pred, group, y_true)


def test_without_labels_only_the_label_free_metrics() -> None:
    rng = np.random.default_rng(6)
    group = rng.choice(["a", "b", "c", "d"], 3_000)
    y_pred, _ = decisions(rng, group, {"c": -0.2})
    report = report_all(y_pred, group)
    assert_gaps_agree(report, y_pred, group)
    assert report.n_labelled == 0 and all(g.n_labelled == 0 for g in report.groups)
    assert all(math.isnan(g.true_positive_rate) for g in report.groups)
    assert any("no labels" in note for note in report.notes)


def test_unlabelled_rows_count_for_selection_only() -> None:
    rng = np.random.default_rng(7)
    group = rng.choice(["a", "b", "c"], 4_000)
    y_pred, y_true = decisions(rng, group, {"a": 0.1})
    labelled = rng.random(group.size) < 0.6
    partial_labels = np.where(labelled, y_true.astype(float), np.nan)
    report = report_all(y_pred, group, y_true=partial_labels)
    assert report.n_labelled == int(labelled.sum())
    frame = metric_frame(y_pred, group)  # selection over all rows
    assert close(report.demographic_parity_difference, frame.difference()["selection_rate"])
    on_labelled = report_all(y_pred[labelled], group[labelled], y_true=y_true[labelled])
    assert_gaps_agree(on_labelled, y_pred[labelled], group[labelled], y_true[labelled])
    for ours, subset in zip(report.groups, on_labelled.groups, strict=True):
        assert ours.count > subset.count and ours.n_labelled == subset.count
        assert ours.true_positive_rate == subset.true_positive_rate
    assert report.equalized_odds_difference == on_labelled.equalized_odds_difference


def test_missing_sensitive_values_form_their_own_group() -> None:
    rng = np.random.default_rng(8)
    group = rng.choice(np.array(["a", "b", None], dtype=object), 3_000, p=[0.5, 0.4, 0.1])
    y_pred, y_true = decisions(rng, group, {None: -0.15})
    report = report_all(y_pred, group, y_true=y_true)
    assert [g.key for g in report.groups] == [("a",), ("b",), (None,)]
    assert report.groups[-1].count == int(pd.isna(group).sum())
    # Fairlearn refuses missing values: give them a name there
    with pytest.raises(ValueError, match="missing values"):
        metric_frame(y_pred, group, y_true)
    named = np.where(pd.isna(group), "<missing>", group)
    frame = metric_frame(y_pred, named, y_true)
    assert close(report.group(None).selection_rate, frame.by_group.loc["<missing>",
                                                                         "selection_rate"])
    assert close(report.equalized_odds_difference,
                 equalized_odds_difference(y_true, y_pred, sensitive_features=named))
    assert report.to_dict()["groups"][-1]["key"] == {"sensitive": None}


# -- the ACS employment data ------------------------------------------------------------------

@pytest.fixture(scope="module")
def acs_years() -> pd.DataFrame:
    """2015 (reference) and 2016-2018 (analysis, labels joined by id): real decisions of the
    model shipped with the data, and whether each person is employed."""
    reference = pd.read_parquet(ACS / "employment_MA_reference.pq")
    analysis = pd.read_parquet(ACS / "employment_MA_analysis.pq")
    target = pd.read_parquet(ACS / "employment_MA_analysis_target.pq")
    return pd.concat([reference, analysis.merge(target, on="id")], ignore_index=True)


def acs_frame(rows: pd.DataFrame) -> MetricFrame:
    """Fairlearn by SEX x RAC1P: the rates the between-group statistics use (Fairlearn costs
    about 20 us per row and metric, so only these)."""
    metrics = {"count": count, "selection_rate": selection_rate,
               "true_positive_rate": true_positive_rate,
               "false_positive_rate": false_positive_rate}
    return MetricFrame(metrics=metrics, y_true=rows["employed"].to_numpy(),
                       y_pred=rows["prediction"].to_numpy(),
                       sensitive_features=rows[["SEX", "RAC1P"]])


def test_acs_every_group_compared(acs_years: pd.DataFrame) -> None:
    """2015 by SEX x RAC1P with min_group_size=1: 17 groups of 1 to 29,159 people."""
    rows = acs_years[acs_years["year"] == 2015]
    report = fairness_report(rows["prediction"], rows[["SEX", "RAC1P"]], y_true=rows["employed"],
                             min_group_size=1)
    frame = acs_frame(rows)
    by_group = frame.by_group.dropna(subset=["count"])
    assert len(report.groups) == len(by_group) == 17
    for group in report.groups:
        theirs = by_group.loc[group.key]
        assert group.count == theirs["count"]
        assert close(group.selection_rate, theirs["selection_rate"])
        assert close(group.true_positive_rate, theirs["true_positive_rate"])
        if group.negatives == 0:  # RAC1P 4: one employed woman; Fairlearn says FPR 0
            assert group.key == ("2", "4") and group.count == 1
            assert math.isnan(group.false_positive_rate) and theirs["false_positive_rate"] == 0
            assert any("no labelled negatives" in note for note in group.notes)
        else:
            assert close(group.false_positive_rate, theirs["false_positive_rate"])
    difference, ratio = frame.difference(), frame.ratio()
    assert close(report.demographic_parity_difference, difference["selection_rate"])
    assert close(report.disparate_impact_ratio, ratio["selection_rate"])
    assert close(report.true_positive_rate_difference, difference["true_positive_rate"])
    assert close(report.true_positive_rate_ratio, ratio["true_positive_rate"])
    fpr = by_group["false_positive_rate"].drop(("2", "4"))
    assert close(report.false_positive_rate_difference, fpr.max() - fpr.min())
    assert close(report.false_positive_rate_ratio, fpr.min() / fpr.max())
    assert difference["false_positive_rate"] == fpr.max()  # Fairlearn's 0 widens its gap
    assert close(report.equalized_odds_difference,
                 max(difference["true_positive_rate"], fpr.max() - fpr.min()))


def test_acs_default_group_size_against_fairlearn(acs_years: pd.DataFrame) -> None:
    """2018 by SEX x RAC1P: the default min_group_size (100) leaves out the small
    intersections; on the rows of the compared groups every statistic is Fairlearn's."""
    rows = acs_years[acs_years["year"] == 2018]
    report = fairness_report(rows["prediction"], rows[["SEX", "RAC1P"]], y_true=rows["employed"])
    sizes = rows.groupby(["SEX", "RAC1P"], observed=True).size()
    small = set(sizes[sizes < 100].index)
    assert {g.key for g in report.groups if not g.compared} == small and len(small) == 7
    assert all(g.positives >= 100 and g.negatives >= 100 for g in report.groups if g.compared)
    keep = [key not in small for key in zip(rows["SEX"], rows["RAC1P"], strict=True)]
    frame = acs_frame(rows[keep])
    difference, ratio = frame.difference(), frame.ratio()
    assert close(report.demographic_parity_difference, difference["selection_rate"])
    assert close(report.disparate_impact_ratio, ratio["selection_rate"])
    assert close(report.equalized_odds_difference,
                 max(difference[["true_positive_rate", "false_positive_rate"]]))
    assert close(report.equalized_odds_ratio,
                 min(ratio[["true_positive_rate", "false_positive_rate"]]))
    assert report.four_fifths_violation  # 0.71: men of two or more races (RAC1P 9) vs Asian men (6)
    for group in report.groups:
        if group.compared:
            assert close(group.selection_rate, frame.by_group.loc[group.key, "selection_rate"])


def test_acs_race_over_the_years(acs_years: pd.DataFrame) -> None:
    """Selection rates by race, year by year, against a pandas group-by: the disparate impact
    ratio dips under four fifths in 2015, 2017 and 2018 (people of two or more races, RAC1P 9,
    are selected least), not in 2016 (0.80); by sex it stays near 1."""
    verdicts = []
    for year, rows in acs_years.groupby("year"):
        report = fairness_report(rows["prediction"], rows["RAC1P"], y_true=rows["employed"])
        rates = rows.groupby("RAC1P", observed=True)["prediction"].agg(["mean", "size"])
        compared = rates[rates["size"] >= 100]["mean"]
        assert [g.key[0] for g in report.groups if g.compared] == list(compared.index)
        assert close(report.disparate_impact_ratio, compared.min() / compared.max())
        assert close(report.demographic_parity_difference, compared.max() - compared.min())
        assert min((g for g in report.groups if g.compared),
                   key=lambda g: g.selection_rate).key == ("9",)
        by_sex = fairness_report(rows["prediction"], rows["SEX"])
        assert by_sex.disparate_impact_ratio > 0.98, year
        verdicts.append(report.four_fifths_violation)
    assert verdicts == [True, False, True, True]


# -- the four-fifths rule, by hand -----------------------------------------------------------

def hand_case(rates: dict[str, tuple[int, int]]) -> tuple[list[int], list[str]]:
    """Decisions with ``selected`` of ``n`` rows per group."""
    y_pred: list[int] = []
    groups: list[str] = []
    for name, (selected, n) in rates.items():
        y_pred += [1] * selected + [0] * (n - selected)
        groups += [name] * n
    return y_pred, groups


def test_four_fifths_by_hand() -> None:
    # A: 10/20 = 0.50, B: 8/20 = 0.40 (exactly four fifths of A), C: 7/20 = 0.35
    y_pred, groups = hand_case({"A": (10, 20), "B": (8, 20)})
    at_the_line = fairness_report(y_pred, groups, min_group_size=1)
    assert at_the_line.disparate_impact_ratio == 0.8
    assert not at_the_line.four_fifths_violation  # "less than four-fifths" is the rule
    assert at_the_line.demographic_parity_difference == pytest.approx(0.1, abs=TOL)
    y_pred, groups = hand_case({"A": (10, 20), "B": (8, 20), "C": (7, 20)})
    report = fairness_report(y_pred, groups, min_group_size=1)
    assert report.disparate_impact_ratio == pytest.approx(0.7, abs=TOL)
    assert report.four_fifths_violation
    assert [g.impact_ratio for g in report.groups] == pytest.approx([1.0, 0.8, 0.7], abs=TOL)
    assert [g.selection_rate for g in report.groups] == [0.5, 0.4, 0.35]


def test_against_a_reference_group() -> None:
    # B is the reference (0.40); A is favoured (1.25), C at 0.35 / 0.40 = 0.875 passes
    y_pred, groups = hand_case({"A": (10, 20), "B": (8, 20), "C": (7, 20)})
    report = fairness_report(y_pred, groups, min_group_size=1, reference_group="B")
    assert report.reference_group == ("B",)
    assert [g.impact_ratio for g in report.groups] == pytest.approx([1.25, 1.0, 0.875],
                                                                    abs=TOL)
    assert report.disparate_impact_vs_reference == pytest.approx(0.875, abs=TOL)
    assert not report.four_fifths_violation  # judged against the reference
    assert report.disparate_impact_ratio == pytest.approx(0.7, abs=TOL)  # still reported
    # against Fairlearn's per-group selection rates on seeded data
    rng = np.random.default_rng(9)
    group = rng.choice(["u", "v", "w", "x"], 5_000)
    y_pred_arr, _ = decisions(rng, group, {"v": 0.1, "x": -0.1})
    report = fairness_report(y_pred_arr, group, reference_group="w")
    rates = metric_frame(y_pred_arr, group).by_group["selection_rate"]
    impact = rates / rates["w"]
    for g in report.groups:
        assert close(g.impact_ratio, impact[g.key[0]])
    assert close(report.disparate_impact_vs_reference, impact.drop("w").min())


def test_a_reference_group_too_small_to_compare() -> None:
    y_pred, groups = hand_case({"A": (60, 200), "B": (100, 200), "C": (5, 10)})
    report = fairness_report(y_pred, groups, reference_group="C")
    assert math.isnan(report.disparate_impact_vs_reference)
    assert not report.four_fifths_violation
    assert any("reference group has 10 rows" in note for note in report.notes)
    assert report.group("A").impact_ratio == pytest.approx(0.6, abs=TOL)  # still shown


# -- min_group_size --------------------------------------------------------------------------

def test_small_groups_are_reported_but_not_compared() -> None:
    rng = np.random.default_rng(10)
    sizes = {"big": 1_500, "mid": 600, "edge": 100, "tiny": 99}
    group = np.repeat(list(sizes), list(sizes.values()))
    y_pred, _ = decisions(rng, group, {"tiny": -0.5, "edge": 0.05})
    report = fairness_report(y_pred, group)
    assert report.min_group_size == 100
    assert [g.compared for g in report.groups] == [True, True, True, False]  # big edge mid tiny
    tiny = report.group("tiny")
    assert tiny.count == 99 and "99 rows < min_group_size=100" in tiny.notes[0]
    assert "1 of 4 groups have fewer than 100 rows" in report.notes[0]
    kept = group != "tiny"
    frame = metric_frame(y_pred[kept], group[kept])
    assert close(report.demographic_parity_difference, frame.difference()["selection_rate"])
    assert close(report.disparate_impact_ratio, frame.ratio()["selection_rate"])
    everyone = fairness_report(y_pred, group, min_group_size=1)
    assert_gaps_agree(everyone, y_pred, group)
    assert everyone.demographic_parity_difference > report.demographic_parity_difference


def test_rates_are_compared_by_their_own_denominator() -> None:
    """A group of 2,000 with 40 labelled positives: its selection rate and FPR are compared,
    its TPR (from 40 rows) is not."""
    rng = np.random.default_rng(11)
    group = np.repeat(["a", "b", "rare-positive"], [3_000, 3_000, 2_000])
    y_pred, y_true = decisions(rng, group, {"b": 0.1})
    rare = np.flatnonzero(group == "rare-positive")
    y_true[rare] = 0
    y_true[rare[:40]] = 1
    report = fairness_report(y_pred, group, y_true=y_true)
    target = report.group("rare-positive")
    assert target.compared and target.positives == 40
    assert any("40 labelled positives < min_group_size=100" in note for note in target.notes)
    frame = metric_frame(y_pred, group, y_true).by_group
    tpr = frame["true_positive_rate"].drop("rare-positive")
    assert close(report.true_positive_rate_difference, tpr.max() - tpr.min())
    assert close(report.false_positive_rate_difference, frame["false_positive_rate"].max()
                 - frame["false_positive_rate"].min())
    assert close(report.demographic_parity_difference, frame["selection_rate"].max()
                 - frame["selection_rate"].min())


def test_fewer_than_two_groups_to_compare() -> None:
    y_pred, groups = hand_case({"A": (60, 200), "B": (1, 10)})
    report = fairness_report(y_pred, groups, y_true=y_pred)
    assert math.isnan(report.demographic_parity_difference)
    assert math.isnan(report.disparate_impact_ratio) and not report.four_fifths_violation
    assert math.isnan(report.equalized_odds_difference)
    assert "fewer than two groups" in report.notes[0]
    # Fairlearn compares the lone group with itself
    assert demographic_parity_difference(y_pred[:200], y_pred[:200],
                                         sensitive_features=groups[:200]) == 0


# -- where Fairlearn reports 0 for an undefined rate -----------------------------------------

def test_a_group_without_positives_has_no_true_positive_rate() -> None:
    rng = np.random.default_rng(12)
    group = np.repeat(["a", "b", "c"], [400, 400, 300])
    y_pred, y_true = decisions(rng, group, {})
    y_true[group == "c"] = 0
    report = fairness_report(y_pred, group, y_true=y_true, min_group_size=1)
    c = report.group("c")
    assert c.positives == 0 and math.isnan(c.true_positive_rate)
    assert "no labelled positives: true positive rate undefined" in c.notes[0]
    frame = metric_frame(y_pred, group, y_true).by_group
    assert frame.loc["c", "true_positive_rate"] == 0.0  # scikit-learn's nan_to_num
    tpr = frame["true_positive_rate"].drop("c")
    assert close(report.true_positive_rate_difference, tpr.max() - tpr.min())
    # with c's "0", Fairlearn's TPR gap is the largest TPR itself
    fairlearn_gap = equalized_odds_difference(y_true, y_pred, sensitive_features=group)
    assert close(fairlearn_gap, tpr.max()) and fairlearn_gap > report.equalized_odds_difference


def test_equalized_odds_ratio_when_every_true_positive_rate_is_zero() -> None:
    group = np.repeat(["a", "b"], 200)
    y_true = np.tile(np.repeat([1, 0], 100), 2)
    y_pred = np.zeros(400, dtype=np.int64)
    y_pred[100:120] = 1  # a: 20 of 100 negatives selected
    y_pred[300:310] = 1  # b: 10 of 100
    report = fairness_report(y_pred, group, y_true=y_true)
    assert math.isnan(report.true_positive_rate_ratio)
    assert report.false_positive_rate_ratio == pytest.approx(0.5, abs=TOL)
    assert report.equalized_odds_ratio == pytest.approx(0.5, abs=TOL)
    assert math.isnan(equalized_odds_ratio(y_true, y_pred, sensitive_features=group))


# -- errors, JSON, frames --------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "match"), [
    ({"y_pred": [1, 0, 1], "sensitive": ["a", "b"]}, "sensitive column 'sensitive' has 2"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "y_true": [1]}, "y_true has 1 values"),
    ({"y_pred": [], "sensitive": []}, "y_pred is empty"),
    ({"y_pred": [1.0, np.nan], "sensitive": ["a", "b"]}, "y_pred has 1 missing"),
    ({"y_pred": [0.2, 0.7, 0.9], "sensitive": ["a", "b", "a"]}, "y_pred holds 3 distinct"),
    ({"y_pred": [0, 1], "sensitive": ["a", "b"], "y_true": ["0", "1"]},
     "y_pred and y_true hold 4"),
    ({"y_pred": ["Yes", "No"], "sensitive": ["a", "b"], "positive": "yes"},
     "positive='yes' is neither of the values in y_pred"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "positive": None}, "positive must be"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "min_group_size": 0}, "min_group_size"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "min_group_size": 2.5}, "min_group_size"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "min_group_size": True}, "min_group_size"),
    ({"y_pred": [1, 0], "sensitive": ["a", "b"], "reference_group": "c"},
     "reference_group='c' is not one of the groups"),
    ({"y_pred": [1, 0], "sensitive": pd.DataFrame({"s": ["a", "b"], "t": [1, 2]}),
      "reference_group": "a"}, "one value per sensitive feature"),
    ({"y_pred": [1, 0], "sensitive": np.zeros((2, 2))}, "pass several sensitive features"),
    ({"y_pred": [1, 0], "sensitive": pd.DataFrame(index=[0, 1])}, "sensitive has no columns"),
    ({"y_pred": [[1, 0]], "sensitive": ["a"]}, "y_pred must be one-dimensional"),
])
def test_invalid_input_names_the_argument(kwargs: dict[str, Any], match: str) -> None:
    y_pred, sensitive = kwargs.pop("y_pred"), kwargs.pop("sensitive")
    with pytest.raises(ValidationError, match=match):
        fairness_report(y_pred, sensitive, **kwargs)


def test_a_single_decision_value_is_all_negative_or_all_positive() -> None:
    none_selected = fairness_report([0] * 300, ["a"] * 150 + ["b"] * 150)
    assert none_selected.selection_rate == 0 and none_selected.demographic_parity_difference == 0
    assert math.isnan(none_selected.disparate_impact_ratio)  # 0 / 0, as in Fairlearn
    assert math.isnan(demographic_parity_ratio([0] * 300, [0] * 300,
                                               sensitive_features=["a"] * 150 + ["b"] * 150))
    assert fairness_report(["yes"] * 300, ["a"] * 300, positive="yes").selection_rate == 1


def test_to_dict_is_json_without_nan() -> None:
    rng = np.random.default_rng(13)
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], 1_000),
                          "race": rng.choice(np.array([1, 2, 9]), 1_000)})
    y_pred, y_true = decisions(rng, frame["race"].to_numpy(), {})
    for report in (fairness_report(y_pred, frame, y_true=y_true, reference_group=("f", 1)),
                   fairness_report(y_pred, frame["sex"])):
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert data["n"] == 1_000 and data["positive"] == 1
        first = data["groups"][0]
        assert first["key"] == dict(zip(report.features, report.groups[0].key, strict=True))
        assert first["count"] == report.groups[0].count
    assert data["equalized_odds_difference"] is None and data["reference_group"] is None
    labelled = fairness_report(y_pred, frame, y_true=y_true, reference_group=("f", 1))
    assert labelled.to_dict()["reference_group"] == {"sex": "f", "race": 1}
    assert isinstance(labelled.to_dict()["groups"][0]["key"]["race"], int)


def test_to_frame_matches_metric_frame_by_group() -> None:
    rng = np.random.default_rng(14)
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], 2_000),
                          "race": rng.choice(np.array([1, 2]), 2_000)})
    y_pred, y_true = decisions(rng, frame["race"].to_numpy(), {2: 0.1})
    ours = fairness_report(y_pred, frame, y_true=y_true).to_frame()
    theirs = metric_frame(y_pred, frame, y_true).by_group
    columns = ["selection_rate", "accuracy", "true_positive_rate", "false_positive_rate",
               "precision"]
    assert list(ours.index.names) == ["sex", "race"]
    pd.testing.assert_frame_equal(ours[columns], theirs[columns], check_exact=False,
                                  atol=TOL, rtol=0, check_index_type=False)
    single = fairness_report(y_pred, frame["sex"]).to_frame()
    assert single.index.name == "sex" and list(single.index) == ["f", "m"]
