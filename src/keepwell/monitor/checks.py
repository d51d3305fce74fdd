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
    LatencySpec,
    PredictionDriftSpec,
)
from keepwell.monitor.context import VersionContext, output_columns
from keepwell.monitor.results import Outcome, finite
from keepwell.stats.drift import compare_frame
from keepwell.stats.drift.verdict import DatasetDrift

__all__ = ["CHECKS", "Check", "build_check"]


class Check(ABC):
    """One configured check. Subclasses set ``kind`` and implement :meth:`_run`."""

    kind: ClassVar[str]

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return str(self.spec.name or self.kind)

    def run(self, rows: pd.DataFrame, context: VersionContext) -> Outcome:
        """Judge ``rows`` (one window of one version)."""
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


CHECKS: Mapping[str, type[Check]] = {
    cls.kind: cls for cls in (DataDrift, PredictionDrift, Latency)
}


def build_check(spec: Any) -> Check:
    """The check a spec from keepwell.yaml describes."""
    return CHECKS[spec.kind](spec)
