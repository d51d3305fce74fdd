"""The checks the monitor runs: one small class per kind, built from its spec in keepwell.yaml.

A check sees one window's rows of one model version (features, outputs, ``label`` where a
label has arrived, ``latency_ms``) and that version's :class:`VersionContext`, and answers
with an :class:`Outcome`. A check that cannot judge a window (too few rows, no labels yet, no
reference to compare with) says ``skipped`` and why; it never guesses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from keepwell.config import (
    DataDriftSpec,
    DataQualitySpec,
    EstimatedPerformanceSpec,
    FairnessSpec,
    LatencySpec,
    MultivariateDriftSpec,
    PerformanceSpec,
    PredictionDriftSpec,
)
from keepwell.monitor.context import VersionContext, output_columns
from keepwell.monitor.results import Outcome, finite
from keepwell.registry.signature import is_logbook_column
from keepwell.stats.drift import compare_frame
from keepwell.stats.drift.verdict import DatasetDrift
from keepwell.stats.fairness import fairness_report
from keepwell.stats.performance import classification_performance, regression_performance
from keepwell.stats.quality import check_quality

__all__ = ["CHECKS", "Check", "build_check"]


class Check(ABC):
    """One configured check. Subclasses set ``kind`` and implement :meth:`_run`."""

    kind: ClassVar[str]

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return str(self.spec.name or self.kind)

    #: Columns without which the check cannot judge (it then says so, skipped).
    needs: ClassVar[tuple[str, ...]] = ()

    def run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        """Judge ``rows`` (one window of one version)."""
        missing = [c for c in self.needs if c not in rows.columns]
        if missing:
            return Outcome.skipped(f"the window has no {', '.join(missing)} column")
        return self._enough(rows, context)

    def _enough(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        """Judge when the window holds ``min_rows`` (a check that judges only some rows
        overrides this)."""
        if len(rows) < self.spec.min_rows:
            return Outcome.skipped(f"{len(rows)} rows; this check needs at least "
                                   f"{self.spec.min_rows} (min_rows)")
        return self._run(rows, context)

    @abstractmethod
    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _drift_outcome(result: DatasetDrift, what: str) -> Outcome:
    drifted = result.drifted_columns
    listed = ", ".join(drifted[:8]) + (" …" if len(drifted) > 8 else "")
    message = (f"{len(drifted)} of {len(result.columns)} {what} drifted: {listed}" if drifted
               else f"no {what} drifted ({len(result.columns)} compared)")
    return Outcome("alert" if result.drifted else "ok", value=result.share,
                   threshold=result.min_share, message=message, details=result.to_dict())


class DataDrift(Check):
    """Each feature against the version's reference profile, judged as one family
    (:func:`keepwell.stats.drift.compare_frame`: significance and effect size, Holm)."""

    kind = "data_drift"
    spec: DataDriftSpec

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        wanted = list(self.spec.columns or context.features)
        present = [c for c in wanted if c in rows.columns and c in context.profile.features]
        if not present:
            return Outcome.skipped("none of the features to compare is in the window")
        result = compare_frame(context.profile.features, rows, columns=present,
                               alpha=self.spec.alpha, min_share=self.spec.min_share)
        return _drift_outcome(result, "features")


class PredictionDrift(Check):
    """The model's outputs (prediction, scores) against their reference distribution."""

    kind = "prediction_drift"
    spec: PredictionDriftSpec

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        present = [c for c in output_columns(rows) if c in context.profile.outputs
                   and rows[c].notna().any()]
        if not present:
            return Outcome.skipped("the window has no model outputs with a reference")
        frame = rows[present]
        if "prediction" in present and context.task != "regression":
            frame = frame.assign(prediction=frame["prediction"].astype("category"))
        result = compare_frame(context.profile.outputs, frame, columns=present,
                               alpha=self.spec.alpha)
        return _drift_outcome(result, "outputs")


class Latency(Check):
    """A quantile of the logged latencies, against ``max_ms`` when one is set."""

    kind = "latency"
    spec: LatencySpec

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        if "latency_ms" not in rows.columns:
            return Outcome.skipped("the window has no latency_ms column")
        values = pd.to_numeric(rows["latency_ms"], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size < self.spec.min_rows:
            return Outcome.skipped(f"{values.size} latencies logged; the check needs "
                                   f"{self.spec.min_rows} (min_rows)")
        q = self.spec.quantile
        value = float(np.quantile(values, q))
        bound = self.spec.max_ms
        details = {"quantile": q, "n": int(values.size),
                   "p50_ms": finite(float(np.quantile(values, 0.5))),
                   "max_ms": finite(float(values.max()))}
        label = f"p{q * 100:g}"
        if bound is None:
            return Outcome("ok", value, None, f"{label} latency {value:.1f} ms (no bound set)",
                           details)
        return Outcome("alert" if value > bound else "ok", value, bound,
                       f"{label} latency {value:.1f} ms, bound {bound:g} ms", details)


# Metrics where smaller is better: "worse than holdout" means larger for these.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error", "mae", "rmse", "mape"})
# Metrics in the target's units (or unbounded): max_drop is a relative rise for these, so the
# verdict does not depend on whether the target is in euros or thousands of euros.
RELATIVE = frozenset({"mae", "rmse", "log_loss"})


def as_classes(values: pd.Series, classes: tuple[Any, ...] | None) -> pd.Series:
    """Labels as the model's own class values: a label logged as text (``"1"``) or as a
    float (``1.0``) is the class ``1``; anything else is left for the metric to refuse."""
    if not classes:
        return values
    known = set(classes)
    by_text = {str(c): c for c in classes}

    def one(value: Any) -> Any:
        if value in known:
            return value
        if isinstance(value, float) and value.is_integer() and int(value) in known:
            return int(value)
        return by_text.get(str(value), value)

    return values.map(one)


def judge_metric(spec: Any, name: str, value: float, holdout: float | None
                 ) -> tuple[str, float | None, str]:
    """Status, bound and explanation of ``value`` under ``max_drop`` / ``min_value`` /
    ``max_value`` (the first bound broken wins; ``max_drop`` counts from ``holdout``)."""
    lower = name in LOWER_IS_BETTER
    reasons: list[tuple[float, str]] = []
    if spec.max_drop is not None and holdout is not None and np.isfinite(holdout):
        step = abs(holdout) * spec.max_drop if name in RELATIVE else spec.max_drop
        bound = holdout + step if lower else holdout - step
        if (value > bound) if lower else (value < bound):
            by = f"{spec.max_drop:.0%}" if name in RELATIVE else f"{spec.max_drop:g}"
            reasons.append((bound, f"{name} {value:.4f} is worse than the holdout's "
                                   f"{holdout:.4f} by more than {by}"))
        primary: float | None = bound
    else:
        primary = None
    if getattr(spec, "min_value", None) is not None and value < spec.min_value:
        reasons.append((spec.min_value, f"{name} {value:.4f} is below {spec.min_value:g}"))
    if getattr(spec, "max_value", None) is not None and value > spec.max_value:
        reasons.append((spec.max_value, f"{name} {value:.4f} is above {spec.max_value:g}"))
    if reasons:
        return "alert", reasons[0][0], reasons[0][1]
    versus = f" (holdout {holdout:.4f})" if holdout is not None else ""
    return "ok", primary, f"{name} {value:.4f}{versus}"


class Performance(Check):
    """A metric over the window's labelled rows, judged against the holdout
    (:mod:`keepwell.stats.performance`). Labels arrive late: a window is judged again on
    later runs (within ``lookback``), and ``coverage`` says what share of it had labels."""

    kind = "performance"
    spec: PerformanceSpec

    needs = ("prediction",)

    def _enough(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        labelled = rows[rows["label"].notna()] if "label" in rows.columns else rows.iloc[:0]
        if len(labelled) < self.spec.min_rows:
            return Outcome.skipped(f"{len(labelled)} of {len(rows)} predictions have labels; "
                                   f"this check needs {self.spec.min_rows} (min_rows)")
        return self._run(labelled, context, coverage=len(labelled) / len(rows))

    def _run(self, rows: pd.DataFrame, context: VersionContext,
             coverage: float = 1.0) -> Outcome:
        task = context.task
        metric = self.spec.metric or ("rmse" if task == "regression" else "accuracy")
        if task == "regression":
            result = regression_performance(rows["label"].astype(float), rows["prediction"])
        else:
            classes = context.signature.classes
            if task == "binary":
                scores: Any = rows["score"] if "score" in rows.columns else None
            else:
                columns = [f"proba_{c}" for c in classes or ()]
                scores = rows[columns] if columns and all(
                    c in rows.columns for c in columns) else None
            result = classification_performance(
                as_classes(rows["label"], classes), as_classes(rows["prediction"], classes),
                scores, classes=list(classes) if classes else None)
        if metric not in result.metrics:
            raise KeyError(f"metric {metric!r} is not one of {', '.join(result.metrics)} "
                           f"for a {task} model; fix `metric` of check {self.name!r}")
        value = result.metrics[metric]
        details = {**result.to_dict(), "metric": metric, "coverage": coverage,
                   "holdout": {k: finite(v) for k, v in context.holdout.items()},
                   "delta": {k: finite(v) for k, v in result.delta(context.holdout).items()}}
        if not np.isfinite(value):
            return Outcome("skipped", None, None,
                           f"{metric} is undefined here: {result.notes.get(metric, '')}",
                           details)
        status, bound, message = judge_metric(self.spec, metric, value,
                                              context.holdout.get(metric))
        return Outcome("alert" if status == "alert" else "ok", value, bound, message, details)


class Fairness(Check):
    """Between-group fairness of a binary classifier's decisions over the model's sensitive
    features (:func:`keepwell.stats.fairness.fairness_report`). Disparate impact and
    demographic parity need no labels; equalized odds uses the labelled rows."""

    kind = "fairness"
    spec: FairnessSpec
    needs = ("prediction",)
    _DEFAULT_THRESHOLD: ClassVar[dict[str, float]] = {
        "disparate_impact": 0.8, "demographic_parity_difference": 0.1,
        "equalized_odds_difference": 0.1}

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        sensitive = list(self.spec.sensitive or context.sensitive_features)
        if not sensitive:
            return Outcome.skipped("the model declares no sensitive_features (register with "
                                   "sensitive_features=[...] or set `sensitive`)")
        if context.task != "binary":
            return Outcome.skipped(f"fairness needs binary decisions; this is a {context.task} "
                                   "model")
        missing = [c for c in sensitive if c not in rows.columns]
        if missing:
            return Outcome.skipped(f"the window has no column {', '.join(missing)}")
        classes = context.signature.classes or (0, 1)
        labels = as_classes(rows["label"], classes) if "label" in rows.columns else None
        report = fairness_report(as_classes(rows["prediction"], classes), rows[sensitive],
                                 y_true=labels, positive=classes[-1],
                                 min_group_size=self.spec.min_group_size)
        metric = self.spec.metric
        value = {"disparate_impact": report.disparate_impact_ratio,
                 "demographic_parity_difference": report.demographic_parity_difference,
                 "equalized_odds_difference": report.equalized_odds_difference}[metric]
        bound = self.spec.threshold if self.spec.threshold is not None \
            else self._DEFAULT_THRESHOLD[metric]
        details = report.to_dict()
        if not np.isfinite(value):
            why = "; ".join(report.notes) or "fewer than two groups could be compared"
            return Outcome("skipped", None, bound, f"{metric} is undefined here: {why}",
                           details)
        low_is_bad = metric == "disparate_impact"
        broken = value < bound if low_is_bad else value > bound
        groups = " × ".join(sensitive)
        message = (f"{metric} over {groups} is {value:.3f}, "
                   f"{'below' if low_is_bad else 'above'} {bound:g}" if broken
                   else f"{metric} over {groups} is {value:.3f} (bound {bound:g})")
        return Outcome("alert" if broken else "ok", value, bound, message, details)


class DataQuality(Check):
    """Schema, type errors, infinities, and rises in missing, out-of-range and unseen values
    against the signature and reference profile (:func:`keepwell.stats.quality.check_quality`:
    counts fail outright; rates need a Holm-significant and material rise)."""

    kind = "data_quality"
    spec: DataQualitySpec

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        logged = [c for c in rows.columns if is_logbook_column(c)]
        report = check_quality(rows, context.signature, reference=context.profile.features,
                               ignore_columns=logged)
        failed = report.failed_columns
        problems = [f"missing column {c}" for c in report.missing_columns]
        problems += [f"{c.name}: {', '.join(c.problems)}" for c in report.columns if c.problems]
        message = ("; ".join(problems)[:300] if report.failed
                   else f"{len(report.columns)} columns clean")
        return Outcome("alert" if report.failed else "ok",
                       value=(len(failed) + len(report.missing_columns)) / max(
                           len(context.features), 1),
                       threshold=0.0, message=message, details=report.to_dict())


def _no_reference(context: VersionContext, key: str) -> Outcome:
    """Skipped, saying why the version has no fitted ``key`` reference."""
    why = context.references.get("notes", {}).get(
        key, "the version was registered without monitoring references")
    return Outcome.skipped(f"no fitted {key} reference: {why}")


class MultivariateDrift(Check):
    """The features' joint distribution: the mean PCA reconstruction error of the window
    (:class:`keepwell.stats.multivariate.ReconstructionDrift`, fitted on the training data at
    registration) against the reference's band.

    The stored band (mean ± 3 std of the reference's chunk errors, NannyML's rule) describes
    chunks of a tenth of the training rows; a smaller window's mean error is noisier, so the
    band is widened by ``sqrt(chunk / n)`` for it (never narrowed), which keeps small windows
    from raising false alarms.
    """

    kind = "multivariate_drift"
    spec: MultivariateDriftSpec

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        detector = context.reconstruction
        if detector is None:
            return _no_reference(context, "reconstruction")
        result = detector.score(rows)
        chunk_errors = np.asarray(detector.reference_errors_, dtype=float)
        centre, spread = float(chunk_errors.mean()), float(chunk_errors.std())
        chunk = detector.n_reference_ / len(chunk_errors)
        widen = max(1.0, float(np.sqrt(chunk / result.n)))
        k = detector.std_multiplier
        upper = centre + k * spread * widen
        lower = centre - k * spread * widen
        drifted = result.error > upper or (lower > 0 and result.error < lower)
        details = {**result.to_dict(), "band": [lower if lower > 0 else None, upper],
                   "widened_by": widen, "reference_error": centre}
        message = (f"mean reconstruction error {result.error:.4f} "
                   f"{'outside' if drifted else 'within'} the reference band "
                   f"[{max(lower, 0):.4f}, {upper:.4f}]")
        return Outcome("alert" if drifted else "ok", result.error, upper, message, details)


class EstimatedPerformance(Check):
    """A classifier's performance estimated from its scores alone, before any label arrives
    (CBPE, :class:`keepwell.stats.estimation.CBPE`, calibrated on the holdout at
    registration), against the same metric realised on the holdout.

    Significant and material, like the drift verdicts: the check alerts only when the whole
    confidence band (estimate ± 3 sampling errors) is worse than the holdout by more than
    ``max_drop`` (or below ``min_value``), so a small window's noise does not raise alarms.
    CBPE assumes the link between inputs and labels is unchanged; the ``performance`` check
    judges the labels when they come.
    """

    kind = "estimated_performance"
    spec: EstimatedPerformanceSpec
    needs = ("prediction",)

    def _run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        cbpe = context.cbpe
        if cbpe is None:
            return _no_reference(context, "cbpe")
        classes = cbpe.classes_
        if context.task == "binary":
            if "score" not in rows.columns:
                return Outcome.skipped("the window has no score column")
            scores: Any = rows["score"]
        else:
            columns = [f"proba_{c}" for c in classes]
            if not all(c in rows.columns for c in columns):
                return Outcome.skipped("the window lacks proba_<class> columns")
            scores = rows[columns]
        result = cbpe.estimate(scores, y_pred=as_classes(rows["prediction"], classes))
        metric = self.spec.metric
        estimate = result[metric]
        details = {**result.to_dict(), "metric": metric}
        if not np.isfinite(estimate.value):
            return Outcome("skipped", None, None, f"{metric} cannot be estimated here",
                           details)
        baseline = estimate.reference
        bounds = []
        if self.spec.max_drop is not None:
            bounds.append(baseline - self.spec.max_drop)
        if self.spec.min_value is not None:
            bounds.append(self.spec.min_value)
        bound = max(bounds) if bounds else None
        band = f"[{estimate.lower:.4f}, {estimate.upper:.4f}]"
        if bound is not None and estimate.upper < bound:
            return Outcome("alert", estimate.value, bound,
                           f"estimated {metric} {estimate.value:.4f} {band} is below "
                           f"{bound:.4f} (holdout {baseline:.4f})", details)
        return Outcome("ok", estimate.value, bound,
                       f"estimated {metric} {estimate.value:.4f} {band}, holdout "
                       f"{baseline:.4f}", details)


CHECKS: Mapping[str, type[Check]] = {
    cls.kind: cls for cls in (DataDrift, PredictionDrift, DataQuality, Latency, Performance,
                              EstimatedPerformance, Fairness, MultivariateDrift)
}


def build_check(spec: Any) -> Check:
    """The check a spec from keepwell.yaml describes."""
    return CHECKS[spec.kind](spec)
