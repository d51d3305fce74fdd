"""What a performance estimate returns: one frozen record per metric, and the chunk's result."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from keepwell.errors import ValidationError

__all__ = ["EstimateResult", "MetricEstimate", "Problem", "json_float"]

Problem = Literal["binary", "multiclass"]


def json_float(value: float | None) -> float | None:
    """A float as JSON holds it: NaN (not a number, or not defined) becomes ``None``."""
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class MetricEstimate:
    """The estimate of one metric on one chunk, with its confidence band and alert.

    ``value`` is the expected metric; ``sampling_error`` its standard error at this chunk's
    size; ``lower`` and ``upper`` are ``value ∓ 3·sampling_error`` clipped to [0, 1].
    ``reference`` is the metric realised on the whole reference, and ``lower_threshold`` /
    ``upper_threshold`` the alert thresholds (mean ∓ 3 standard deviations of the metric
    realised on the reference's chunks, clipped to [0, 1]; ``None`` when not defined).
    ``alert`` is true when ``value`` falls outside them. A value that cannot be estimated
    (an expected ROC AUC when every probability is 0, say) is NaN, and never alerts.
    """

    metric: str
    value: float
    sampling_error: float
    lower: float
    upper: float
    reference: float
    lower_threshold: float | None
    upper_threshold: float | None
    alert: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: NaN becomes ``None``."""
        return {"metric": self.metric, "value": json_float(self.value),
                "sampling_error": json_float(self.sampling_error),
                "lower": json_float(self.lower), "upper": json_float(self.upper),
                "reference": json_float(self.reference),
                "lower_threshold": self.lower_threshold,
                "upper_threshold": self.upper_threshold, "alert": self.alert}


@dataclass(frozen=True)
class EstimateResult:
    """Estimated performance of one chunk of production scores, one entry per metric.

    ``result["f1"]`` is that metric's :class:`MetricEstimate`; iterating yields them in the
    estimator's order; ``alerts`` names the metrics out of their thresholds.
    """

    problem: Problem
    n: int
    estimates: tuple[MetricEstimate, ...]

    def __getitem__(self, metric: str) -> MetricEstimate:
        for estimate in self.estimates:
            if estimate.metric == metric:
                return estimate
        known = ", ".join(e.metric for e in self.estimates)
        raise ValidationError(f"metric {metric!r} was not estimated: use one of {known}")

    def __iter__(self) -> Iterator[MetricEstimate]:
        return iter(self.estimates)

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(e.metric for e in self.estimates if e.alert)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"problem", "n", "estimates": {metric: {...}}}``."""
        return {"problem": self.problem, "n": self.n,
                "estimates": {e.metric: e.to_dict() for e in self.estimates}}
