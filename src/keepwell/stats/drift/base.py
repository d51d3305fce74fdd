"""What every drift test is: a small class with a stable name, parameters, and one method.

A drift test compares one column of production data (``current``) with that column's
reference summary and returns a frozen :class:`DriftResult`::

    result = KolmogorovSmirnov().compare(profile.features["age"], window["age"])
    result.drifted, result.p_value, result.effect

The per-column verdict: significant *and* material
--------------------------------------------------
Every test reports a p-value (how surprising the difference is if nothing changed) and an
effect size (how large the difference is), and by default a column has drifted only when
both say so::

    drifted = p_value < alpha  and  effect >= threshold

A bare p-value cries wolf on large samples: at n = 70,000 a shift of a hundredth of a standard
deviation is "significant". A bare distance cries wolf on small ones: at n = 100 the sampling
noise of a PSI or a Wasserstein distance alone exceeds the usual thresholds. Requiring both
removes both failure modes, and the false-alarm rate stays at or under ``alpha`` at every
sample size (the effect gate only ever removes alarms). Each test's default ``threshold``
is the value its effect measure takes for the same change, a normal variable moving by about
a quarter of a standard deviation (see :mod:`keepwell.stats.drift.verdict` for the table).
``alpha=None`` drops the significance gate, for a bare distance rule like Evidently's.

``kind`` says which number is the test's own: a :attr:`StatisticKind.P_VALUE` test is a
classical hypothesis test (low p-value means drift, its effect size is the second gate); a
:attr:`StatisticKind.DISTANCE` test is a distance (high means drift, a significance test on
the same data is the second gate).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

from keepwell.errors import ValidationError
from keepwell.stats.drift.columns import (
    CategoricalColumn,
    NumericColumn,
    categorical_column,
    column,
    numeric_column,
)
from keepwell.stats.drift.reference import Reference

__all__ = ["ColumnKind", "DriftResult", "DriftTest", "StatisticKind", "is_drift"]

ColumnKind = Literal["numeric", "categorical"]


class StatisticKind(StrEnum):
    """Whether a test's own statistic is a p-value (low means drift) or a distance (high)."""

    P_VALUE = "p_value"
    DISTANCE = "distance"


def is_drift(p_value: float | None, effect: float, *, alpha: float | None,
             threshold: float) -> bool:
    """The per-column rule: ``p_value < alpha`` (when ``alpha`` is set) and ``effect >= threshold``.

    Examples
    --------
    >>> is_drift(1e-9, 0.01, alpha=0.05, threshold=0.1)   # significant but negligible
    False
    >>> is_drift(0.3, 0.2, alpha=0.05, threshold=0.1)     # large but within the noise
    False
    >>> is_drift(1e-9, 0.2, alpha=0.05, threshold=0.1)
    True
    """
    significant = alpha is None or (p_value is not None and p_value < alpha)
    return significant and effect >= threshold


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one drift test on one column.

    ``statistic`` is the test's own statistic (KS D, χ², z, PSI, ...); ``effect`` the effect
    size the verdict gates on, named by ``effect_name`` (for distance tests it is the
    statistic). ``p_value`` is ``None`` when the test ran without a significance gate;
    ``p_value_adjusted`` is set when the column was judged within a family of columns (Holm).
    Counts are of non-missing values; ``n_current_missing`` values were NaN or None.
    """

    test: str
    feature: str
    kind: StatisticKind
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str
    threshold: float
    alpha: float | None
    drifted: bool
    n_reference: int
    n_current: int
    n_current_missing: int = 0
    p_value_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain floats, ints, bools, strings and ``None``."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data


class DriftTest(ABC):
    """Base class of drift tests: parameters in ``__init__``, the work in :meth:`compare`.

    Subclasses set ``name`` (the stable id stored configs use), ``kind``, ``applies_to`` and
    ``effect_name``, store their keyword parameters unchanged in ``__init__`` (at least
    ``alpha`` and ``threshold``), and implement :meth:`evaluate`.
    """

    name: ClassVar[str]
    kind: ClassVar[StatisticKind]
    applies_to: ClassVar[frozenset[ColumnKind]]
    effect_name: ClassVar[str]

    alpha: float | None
    threshold: float

    def compare(self, reference: Reference, current: Any, *,
                feature: str | None = None) -> DriftResult:
        """Compare ``current`` (1-D values; NaN/None are missing) with ``reference``.

        ``reference`` is a column summary (``NumericProfile`` / ``CategoricalProfile``) or
        the raw reference values (summarised at full resolution, see
        :mod:`keepwell.stats.drift.reference`). ``feature`` defaults to the summary's name.

        Raises
        ------
        ValidationError
            ``current`` is empty or all missing, the reference is empty, a parameter is out
            of range, or the column is of a kind this test does not apply to.
        """
        self.check_params()
        name = feature if feature is not None else str(getattr(reference, "name", ""))
        return self.evaluate(self.prepare(reference, current), feature=name)

    def prepare(self, reference: Reference, current: Any) -> NumericColumn | CategoricalColumn:
        """Pair the reference with the current values as this test reads them."""
        if self.applies_to == frozenset({"numeric"}):
            return numeric_column(reference, current, test=self.name)
        if self.applies_to == frozenset({"categorical"}):
            return categorical_column(reference, current)
        return column(reference, current)

    def evaluate(self, data: NumericColumn | CategoricalColumn, *,
                 feature: str = "") -> DriftResult:
        """Compute the result from a prepared column (shared when several tests run).

        Raises
        ------
        ValidationError
            The column is of a kind this test does not apply to.
        """
        kind: ColumnKind = "numeric" if isinstance(data, NumericColumn) else "categorical"
        if kind not in self.applies_to:
            raise ValidationError(
                f"{self.name} compares {' or '.join(sorted(self.applies_to))} columns; "
                f"{feature!r} is {kind}.")
        return self._score(data, feature)

    @abstractmethod
    def _score(self, data: NumericColumn | CategoricalColumn, feature: str) -> DriftResult:
        """The result for a column of a kind this test applies to."""

    def check_params(self) -> None:
        """Validate the stored parameters (called by :meth:`compare`)."""
        if self.alpha is not None and not 0.0 < self.alpha < 1.0:
            raise ValidationError(f"{self.name}: alpha must be in (0, 1) or None, not "
                                  f"{self.alpha!r}.")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)
                and self.threshold >= 0.0):
            raise ValidationError(f"{self.name}: threshold must be a finite number >= 0, not "
                                  f"{self.threshold!r}.")

    def params(self) -> dict[str, Any]:
        """The constructor parameters, as given: ``type(test)(**test.params())`` is a copy."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def result(self, data: NumericColumn | CategoricalColumn, *, feature: str,
               statistic: float, p_value: float | None, effect: float) -> DriftResult:
        """Build the frozen result and apply :func:`is_drift`."""
        return DriftResult(
            test=self.name, feature=feature, kind=self.kind, statistic=float(statistic),
            p_value=None if p_value is None else float(p_value), effect=float(effect),
            effect_name=self.effect_name, threshold=float(self.threshold),
            alpha=self.alpha,
            drifted=is_drift(p_value, effect, alpha=self.alpha, threshold=self.threshold),
            n_reference=data.reference.count, n_current=data.n,
            n_current_missing=data.missing)
