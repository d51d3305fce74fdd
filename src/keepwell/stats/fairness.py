"""Group fairness of a classifier's decisions: per-group rates and the gaps between groups.

:func:`fairness_report` splits the rows by one sensitive feature, or by the combinations of
several (intersectional groups, as Fairlearn's ``MetricFrame`` does), and computes everything
from one ``bincount`` of (group, label, decision) cells, about 0.1 s per million rows:

- per group: rows, selection rate, and with labels accuracy, true and false positive rates and
  precision;
- between groups: the demographic parity difference, the disparate impact ratio with the
  four-fifths rule, and with labels the equalized odds difference and ratio.

Every number is Fairlearn's on the same data (``MetricFrame``, ``selection_rate``,
``true_positive_rate``, ``false_positive_rate``, ``demographic_parity_difference`` /
``_ratio``, ``equalized_odds_difference`` / ``_ratio``; ``tests/stats/test_fairness.py``
checks each to 1e-12), except where Fairlearn's answer is not a rate, on purpose:

- A group with no labelled positives has no true positive rate (no negatives: no false
  positive rate; no predicted positives: no precision). It is NaN here, with a note; Fairlearn
  reports 0 (scikit-learn's ``confusion_matrix(normalize="true")`` turns 0/0 into 0), which
  can make a group look maximally unfair for lack of data.
- Groups too small to compare are reported but left out of the between-group statistics
  (``min_group_size``); Fairlearn compares every group.
- With fewer than two groups to compare, a between-group statistic is NaN (Fairlearn: 0 and
  1), and the equalized odds ratio is the smaller of the defined TPR and FPR ratios
  (Fairlearn's ``min`` over the pair returns NaN when the TPR ratio is NaN, i.e. when every
  compared group's true positive rate is 0).
- Missing sensitive values form a group of their own, whose value is ``None`` (Fairlearn
  refuses them), and a missing label marks a row not labelled yet: it counts for selection
  rates only (Fairlearn has no such rows).

Sources: Fairlearn, ``fairlearn/metrics/_fairness_metrics.py`` (v0.15); the four-fifths rule:
US EEOC, *Uniform Guidelines on Employee Selection Procedures*, 29 CFR § 1607.4(D); equalized
odds: Hardt, Price and Srebro (2016), *Equality of Opportunity in Supervised Learning*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.stats.drift.reference import as_series

__all__ = ["FOUR_FIFTHS", "FairnessReport", "GroupMetrics", "fairness_report"]

FOUR_FIFTHS = 0.8
"""A selection rate under four fifths of the highest (or the reference group's) is adverse
impact (29 CFR § 1607.4(D))."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class GroupMetrics:
    """One group: its counts and rates (NaN where a rate's denominator is 0).

    ``key`` holds the group's value of each sensitive feature (``None`` for missing).
    ``impact_ratio`` is its selection rate over the reference group's, or over the highest
    compared group's without one. ``compared`` is whether the group has ``min_group_size``
    rows and so enters the selection-rate statistics; its true (false) positive rate is
    compared when it has that many labelled positives (negatives). ``notes`` say why a rate
    is undefined or a group left out.
    """

    key: tuple[Any, ...]
    count: int
    selected: int
    selection_rate: float
    impact_ratio: float
    compared: bool
    n_labelled: int
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    accuracy: float
    true_positive_rate: float
    false_positive_rate: float
    precision: float
    notes: tuple[str, ...] = ()

    @property
    def positives(self) -> int:
        """Labelled rows whose label is positive."""
        return self.true_positives + self.false_negatives

    @property
    def negatives(self) -> int:
        """Labelled rows whose label is not positive."""
        return self.true_negatives + self.false_positives


@dataclass(frozen=True)
class FairnessReport:
    """Per-group metrics and between-group gaps of one window of decisions.

    Differences are ``max - min`` and ratios ``min / max`` over the compared groups; NaN
    when fewer than two groups are compared, or a ratio's largest rate is 0. Label-based
    fields are NaN when no labels were given (``has_labels`` is False). Overall rates are over
    all rows (all labelled rows for the label-based ones).
    """

    features: tuple[str, ...]
    positive: Any
    min_group_size: int
    reference_group: tuple[Any, ...] | None
    groups: tuple[GroupMetrics, ...]
    n: int
    selection_rate: float
    demographic_parity_difference: float
    disparate_impact_ratio: float
    disparate_impact_vs_reference: float
    four_fifths_violation: bool
    has_labels: bool
    n_labelled: int
    accuracy: float
    true_positive_rate_difference: float
    true_positive_rate_ratio: float
    false_positive_rate_difference: float
    false_positive_rate_ratio: float
    equalized_odds_difference: float
    equalized_odds_ratio: float
    notes: tuple[str, ...] = ()

    def group(self, *key: Any) -> GroupMetrics:
        """The group whose sensitive values are ``key`` (one value per feature).

        Raises
        ------
        ValidationError
            No group has these values.
        """
        for group in self.groups:
            if group.key == key:
                return group
        raise ValidationError(f"no group {key!r}; the groups are "
                              f"{[g.key for g in self.groups][:20]}.")

    def to_frame(self) -> pd.DataFrame:
        """One row per group, indexed by the sensitive features (like ``MetricFrame.by_group``)."""
        rows = [{k: v for k, v in asdict(g).items() if k not in ("key", "notes")}
                for g in self.groups]
        keys = [g.key for g in self.groups]
        index = (pd.Index([k[0] for k in keys], name=self.features[0], dtype=object)
                 if len(self.features) == 1 else
                 pd.MultiIndex.from_tuples(keys, names=self.features))
        return pd.DataFrame(rows, index=index)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: NaN as ``None``, group keys as ``{feature: value}``."""
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        data["positive"] = json_value(self.positive)
        data["reference_group"] = (None if self.reference_group is None else
                                   dict(zip(self.features, map(json_value, self.reference_group),
                                            strict=True)))
        data["groups"] = [
            {**{f.name: _plain(getattr(g, f.name)) for f in fields(g)},
             "key": dict(zip(self.features, map(json_value, g.key), strict=True))}
            for g in self.groups]
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def fairness_report(y_pred: Any, sensitive: Any, *, y_true: Any = None, positive: Any = 1,
                    min_group_size: int = 100, reference_group: Any = None) -> FairnessReport:
    """Per-group metrics and between-group fairness gaps of binary decisions.

    With ``s_g = selected_g / n_g`` the selection rate of group ``g``, ``TPR_g = TP_g / P_g``
    and ``FPR_g = FP_g / N_g`` (``P_g``, ``N_g`` its labelled positives and negatives), over
    the compared groups:

    - demographic parity difference ``max s - min s`` (Fairlearn's
      ``demographic_parity_difference``), disparate impact ratio ``min s / max s``
      (``demographic_parity_ratio``); ``four_fifths_violation`` when the ratio, or with
      ``reference_group`` the smallest ``s_g / s_ref``, is under 0.8 (:data:`FOUR_FIFTHS`);
    - equalized odds difference ``max(max TPR - min TPR, max FPR - min FPR)`` and ratio
      ``min(min TPR / max TPR, min FPR / max FPR)`` (Fairlearn, ``agg="worst_case"``).

    A group's selection rate is compared only if the group has ``min_group_size`` rows, its
    TPR only if it has that many labelled positives, its FPR that many labelled negatives:
    every compared rate then has a standard error of at most ``0.5 / sqrt(min_group_size)``
    (0.05 at the default 100). Smaller groups are still reported, with a note. This keeps
    tiny groups from raising alarms, but does not make the four-fifths rule a test: two groups
    of 100 rows with the same 50 % selection rate fall under four fifths by chance 11 % of the
    time (2.6 % at 200 rows, 0.7 % at 300), so judge a single window with care and watch the
    trend across windows.

    Parameters
    ----------
    y_pred : 1-D array-like
        The decisions, at most two distinct values (with ``y_true``), no missing values.
    sensitive : 1-D array-like, DataFrame or mapping of name to 1-D array-like
        The sensitive feature(s), aligned with ``y_pred`` by position. Several columns make
        intersectional groups, one per combination present. A missing value (None, NaN) is a
        group of its own with the value ``None``.
    y_true : 1-D array-like, optional
        The labels. A missing label marks a row not yet labelled: it counts for the selection
        rate but not for the label-based metrics. Without ``y_true`` only the label-free
        metrics are computed (production windows often have no labels yet).
    positive : scalar, default 1
        The favourable decision (and label). Every other value is negative.
    min_group_size : int, default 100
        Fewest rows (labelled positives, labelled negatives) for a group's rate to enter the
        between-group statistics.
    reference_group : scalar or tuple, optional
        The group to compare each group's selection rate with (its value, or its values in
        feature order): sets ``impact_ratio`` and ``disparate_impact_vs_reference``.

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValidationError
        Inputs of different lengths or empty; missing decisions; more than two distinct
        decision/label values, or two of which neither is ``positive``; a missing
        ``positive``; ``min_group_size`` not a positive integer; ``reference_group`` not
        one of the groups.

    Examples
    --------
    >>> sex = ["f"] * 200 + ["m"] * 200
    >>> hired = [1] * 60 + [0] * 140 + [1] * 100 + [0] * 100   # 30 % vs 50 %
    >>> report = fairness_report(hired, sex)
    >>> round(report.disparate_impact_ratio, 2), report.four_fifths_violation
    (0.6, True)
    >>> round(report.demographic_parity_difference, 2), report.group("f").selection_rate
    (0.2, 0.3)
    """
    if not (isinstance(min_group_size, int | np.integer) and not isinstance(min_group_size, bool)
            and min_group_size >= 1):
        raise ValidationError(f"min_group_size must be an integer >= 1, not {min_group_size!r}.")
    if _is_missing(positive):
        raise ValidationError("positive must be the favourable decision value (such as 1 or "
                              f"'yes'), not {positive!r}.")
    minimum = int(min_group_size)
    pred = as_series(y_pred, what="y_pred")
    n = len(pred)
    if n == 0:
        raise ValidationError("y_pred is empty: pass at least one decision.")
    features, columns = _sensitive_columns(sensitive)
    truth = None if y_true is None else as_series(y_true, what="y_true")
    for name, values in [*zip(features, columns, strict=True), ("y_true", truth)]:
        if values is not None and len(values) != n:
            label = "y_true" if values is truth else f"sensitive column {name!r}"
            raise ValidationError(f"{label} has {len(values)} values but y_pred has {n}; "
                                  "pass one value per decision.")
    codes, keys = _groups(columns)
    state = _states(pred, truth, positive)
    cells = np.bincount(codes * 6 + state, minlength=6 * len(keys)).reshape(-1, 6)
    ref = _reference_index(reference_group, keys, features)
    return _report(cells, keys, features, positive=positive, minimum=minimum, ref=ref,
                   labelled=truth is not None)


def _report(cells: IntArray, keys: list[tuple[Any, ...]], features: tuple[str, ...], *,
            positive: Any, minimum: int, ref: int | None, labelled: bool) -> FairnessReport:
    count = cells.sum(axis=1)
    selected = cells[:, 1::2].sum(axis=1)
    tn, fp, fn, tp = cells[:, 2], cells[:, 3], cells[:, 4], cells[:, 5]
    rate = _rate(selected, count)
    tpr, fpr = _rate(tp, tp + fn), _rate(fp, fp + tn)
    compared = count >= minimum
    dp_difference, dp_ratio = _gap(rate, compared)
    tpr_difference, tpr_ratio = _gap(tpr, tp + fn >= minimum)
    fpr_difference, fpr_ratio = _gap(fpr, fp + tn >= minimum)
    notes: list[str] = []
    if ref is None:
        base = float(rate[compared].max()) if compared.any() else math.nan
        vs_reference = math.nan
    else:
        base = float(rate[ref])
        others = compared.copy()
        others[ref] = False
        vs_reference = (float((rate[others] / base).min())
                        if compared[ref] and base > 0 and others.any() else math.nan)
        if not compared[ref]:
            notes.append(f"the reference group has {count[ref]} rows < min_group_size="
                         f"{minimum}: no ratio against it")
    impact = rate / base if base > 0 else np.full(rate.shape, math.nan)
    left_out = int(np.count_nonzero(~compared))
    if np.count_nonzero(compared) < 2:
        notes.append(f"fewer than two groups have min_group_size={minimum} rows: no "
                     "between-group statistic")
    elif left_out:
        notes.append(f"{left_out} of {len(keys)} groups have fewer than {minimum} rows and are "
                     "left out of the between-group statistics")
    if not labelled:
        notes.append("no labels (y_true): accuracy, true/false positive rates and equalized "
                     "odds are NaN")
    n_labelled = int(cells[:, 2:].sum())
    groups = tuple(
        GroupMetrics(
            key=keys[g], count=int(count[g]), selected=int(selected[g]),
            selection_rate=float(rate[g]), impact_ratio=float(impact[g]),
            compared=bool(compared[g]), n_labelled=int(tn[g] + fp[g] + fn[g] + tp[g]),
            true_positives=int(tp[g]), false_positives=int(fp[g]), true_negatives=int(tn[g]),
            false_negatives=int(fn[g]),
            accuracy=_ratio(tp[g] + tn[g], tp[g] + tn[g] + fp[g] + fn[g]),
            true_positive_rate=float(tpr[g]), false_positive_rate=float(fpr[g]),
            precision=_ratio(tp[g], tp[g] + fp[g]),
            notes=_group_notes(cells[g], minimum, labelled))
        for g in range(len(keys)))
    total = cells.sum(axis=0)
    used = vs_reference if ref is not None else dp_ratio
    return FairnessReport(
        features=features, positive=positive, min_group_size=minimum,
        reference_group=None if ref is None else keys[ref], groups=groups, n=int(count.sum()),
        selection_rate=_ratio(selected.sum(), count.sum()),
        demographic_parity_difference=dp_difference, disparate_impact_ratio=dp_ratio,
        disparate_impact_vs_reference=vs_reference,
        four_fifths_violation=bool(used < FOUR_FIFTHS), has_labels=labelled,
        n_labelled=n_labelled, accuracy=_ratio(total[2] + total[5], n_labelled),
        true_positive_rate_difference=tpr_difference, true_positive_rate_ratio=tpr_ratio,
        false_positive_rate_difference=fpr_difference, false_positive_rate_ratio=fpr_ratio,
        equalized_odds_difference=float(np.fmax(tpr_difference, fpr_difference)),
        equalized_odds_ratio=float(np.fmin(tpr_ratio, fpr_ratio)), notes=tuple(notes))


def _group_notes(cells: IntArray, minimum: int, labelled: bool) -> tuple[str, ...]:
    tn, fp, fn, tp = (int(c) for c in cells[2:])
    count = int(cells.sum())
    notes = []
    if count < minimum:
        notes.append(f"{count} rows < min_group_size={minimum}: left out of the between-group "
                     "statistics")
    if not labelled:
        return tuple(notes)
    if tn + fp + fn + tp == 0:
        return (*notes, "no labelled rows: accuracy and rates undefined")
    for what, k, rate in (("positives", tp + fn, "true positive rate"),
                          ("negatives", tn + fp, "false positive rate")):
        if k == 0:
            notes.append(f"no labelled {what}: {rate} undefined (Fairlearn reports 0)")
        elif k < minimum <= count:
            notes.append(f"{k} labelled {what} < min_group_size={minimum}: left out of the "
                         f"{rate} comparison")
    if tp + fp == 0:
        notes.append("no positive decisions among labelled rows: precision undefined")
    return tuple(notes)


def _rate(numerator: IntArray, denominator: IntArray) -> FloatArray:
    out = np.full(numerator.shape, math.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _ratio(numerator: Any, denominator: Any) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else math.nan


def _gap(rates: FloatArray, compared: NDArray[np.bool_]) -> tuple[float, float]:
    """``(max - min, min / max)`` of the compared rates; NaN for fewer than two."""
    chosen = rates[compared]
    if chosen.size < 2:
        return math.nan, math.nan
    high, low = float(chosen.max()), float(chosen.min())
    return high - low, (low / high if high > 0 else math.nan)


def _states(pred: pd.Series, truth: pd.Series | None, positive: Any) -> IntArray:
    """Per row: ``decision + 2 * (0 unlabelled, 1 negative, 2 positive label)``."""
    pred_codes, pred_values = _factorize(pred)
    missing = int(np.count_nonzero(pred_codes < 0))
    if missing:
        raise ValidationError(f"y_pred has {missing} missing values; every row needs a "
                              "decision.")
    true_codes, true_values = (np.empty(0, np.intp), []) if truth is None else _factorize(truth)
    levels = {*pred_values, *true_values}
    source = "y_pred and y_true" if truth is not None else "y_pred"
    if len(levels) > 2:
        shown = ", ".join(repr(v) for v in sorted(levels, key=repr)[:5])
        verb = "hold" if truth is not None else "holds"
        raise ValidationError(f"{source} {verb} {len(levels)} distinct values ({shown}, ...); "
                              "fairness metrics need binary decisions: threshold scores and map "
                              "other outcomes to positive or not first.")
    if len(levels) == 2 and positive not in levels:
        raise ValidationError(f"positive={positive!r} is neither of the values in {source} "
                              f"({', '.join(repr(v) for v in sorted(levels, key=repr))}); pass "
                              "the favourable one as positive=.")
    state = _is_value(pred_codes, pred_values, positive).astype(np.int64)
    if truth is not None:
        label = np.where(true_codes < 0, 0, 1 + _is_value(true_codes, true_values, positive))
        state += 2 * label
    return state


def _is_value(codes: NDArray[np.intp], values: list[Any], positive: Any) -> NDArray[np.bool_]:
    hits = [i for i, v in enumerate(values) if v == positive]
    return codes == hits[0] if hits else np.zeros(codes.shape, dtype=bool)


def _groups(columns: list[pd.Series]) -> tuple[IntArray, list[tuple[Any, ...]]]:
    """Group code per row, and each group's values, in sorted order of the values."""
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    table = np.zeros((1, 0), dtype=np.int64)
    levels: list[list[Any]] = []
    for column in columns:
        col_codes, values = _factorize(column, sort=True)
        k = len(values) + 1  # the last code is "missing"
        col_codes = np.where(col_codes < 0, k - 1, col_codes).astype(np.int64)
        levels.append([*values, None])
        if len(columns) == 1:
            present = np.flatnonzero(np.bincount(col_codes, minlength=k))
            lookup = np.zeros(k, dtype=np.int64)
            lookup[present] = np.arange(present.size)
            codes, table = lookup[col_codes], present[:, None]
            break
        codes, seen = pd.factorize(codes * k + col_codes, sort=True)
        seen = np.asarray(seen, dtype=np.int64)
        table = np.column_stack([table[seen // k], seen % k])
    keys = [tuple(levels[j][c] for j, c in enumerate(row)) for row in table.tolist()]
    return np.asarray(codes, dtype=np.int64), keys


def _factorize(series: pd.Series, *, sort: bool = False) -> tuple[NDArray[np.intp], list[Any]]:
    """Codes (-1 for missing) and the distinct values, as plain Python scalars."""
    try:
        codes, uniques = pd.factorize(series, sort=sort, use_na_sentinel=True)
    except TypeError:  # values that do not sort (mixed types)
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(codes), [u.item() if isinstance(u, np.generic) else u for u in uniques]


def _reference_index(reference: Any, keys: list[tuple[Any, ...]],
                     features: tuple[str, ...]) -> int | None:
    if reference is None:
        return None
    wanted = reference if isinstance(reference, tuple) else (reference,)
    if len(wanted) != len(features):
        raise ValidationError(f"reference_group needs one value per sensitive feature "
                              f"{list(features)}, not {reference!r}.")
    for i, key in enumerate(keys):
        if key == wanted:
            return i
    raise ValidationError(f"reference_group={reference!r} is not one of the groups "
                          f"({[k if len(k) > 1 else k[0] for k in keys][:20]}).")


def _sensitive_columns(sensitive: Any) -> tuple[tuple[str, ...], list[pd.Series]]:
    if isinstance(sensitive, pd.DataFrame | Mapping):
        names = tuple(str(c) for c in sensitive)
        if not names:
            raise ValidationError("sensitive has no columns: pass at least one sensitive "
                                  "feature.")
        if len(set(names)) != len(names):
            raise ValidationError(f"sensitive has duplicate column names {list(names)}.")
        if isinstance(sensitive, pd.DataFrame):
            return names, [sensitive.iloc[:, j] for j in range(sensitive.shape[1])]
        return names, [as_series(v, what=f"sensitive[{k!r}]") for k, v in sensitive.items()]
    try:
        series = as_series(sensitive, what="sensitive")
    except ValidationError as error:  # not 1-D: say how to pass several features
        raise ValidationError(f"{str(error).removesuffix('.')} (pass several sensitive "
                              "features as a DataFrame).") from None
    return (str(series.name) if series.name is not None else "sensitive",), [series]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
