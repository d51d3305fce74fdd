"""The reference profile: a compact summary of the training data, stored with each version.

The monitoring engine compares production data against this profile instead of the raw
training data, so the reference is computed once, at registration, and never again.

Per numeric column: count, missing, range, mean and standard deviation; ``bins`` quantile bin
edges with the share of rows in each bin (for PSI, Jensen–Shannon and histograms); and the
quantile function at ``quantiles`` evenly spaced probabilities (for Kolmogorov–Smirnov and
Wasserstein distances: the approximation error of the CDF is at most ``1 / (quantiles - 1)``);
and, when the column takes at most 20 distinct values, each held by two rows on average (or a
single value), those values and their counts (``levels``, ``level_counts``), so that drift
tests compare one cell per value where quantile bins would merge them: the deciles of a 0/1
column are 0 and 1, a single bin. Per categorical column: the frequency of every category
(the rarest beyond ``max_categories`` pooled as ``other_count``). Per model output (scores,
probabilities, predictions): the same, so score drift is checked like feature drift.

A profile serialises to canonical JSON (``format_version`` 2), a few kilobytes per column, so
loading one costs milliseconds. Format 1, written before levels were stored, is still read:
it is format 2 without them (a column without levels omits both keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from keepwell._values import json_value
from keepwell.errors import ValidationError
from keepwell.registry.signature import check_feature_name, column_dtype
from keepwell.stats.drift.reference import levels_of

__all__ = ["CategoricalProfile", "ColumnProfile", "NumericProfile", "ReferenceProfile"]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # format 1 is format 2 without levels


@dataclass(frozen=True)
class NumericProfile:
    """Summary of one numeric column. Shares in ``bin_shares`` sum to 1 over non-missing rows.

    ``levels`` and ``level_counts``: the distinct values of a few-valued column and how many
    rows hold each (see the module docstring); empty for other columns.
    """

    name: str
    dtype: str
    count: int
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    bin_edges: tuple[float, ...]
    bin_shares: tuple[float, ...]
    quantiles: tuple[float, ...]
    levels: tuple[float, ...] = ()
    level_counts: tuple[int, ...] = ()
    kind: ClassVar[Literal["numeric"]] = "numeric"

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    @classmethod
    def from_values(cls, name: str, dtype: str, values: np.ndarray, *, bins: int,
                    quantiles: int) -> NumericProfile:
        values = np.asarray(values, dtype=float)
        missing_mask = ~np.isfinite(values)
        finite = values[~missing_mask]
        n = int(finite.size)
        if n == 0:
            return cls(name, dtype, 0, int(missing_mask.sum()), None, None, None, None, (), (),
                       ())
        finite.sort()
        # One call for both sets of quantiles: each is read from the same order statistics.
        found = np.quantile(finite, np.concatenate((np.linspace(0.0, 1.0, bins + 1),
                                                    np.linspace(0.0, 1.0, quantiles))))
        edges, qs = np.unique(found[:bins + 1]), found[bins + 1:]
        if edges.size == 1:  # a constant column: one bin holding everything
            shares = np.array([1.0])
        else:
            # Bins are closed on the left, the last one on both sides: numpy.histogram's
            # counts, which it finds by these searches after sorting (the values are sorted).
            cuts = np.concatenate((finite.searchsorted(edges[:-1], side="left"),
                                   finite.searchsorted(edges[-1:], side="right")))
            shares = np.diff(cuts) / n
        levels = levels_of(finite)
        return cls(
            name=name, dtype=dtype, count=n, missing=int(missing_mask.sum()),
            min=float(finite[0]), max=float(finite[-1]), mean=float(finite.mean()),
            std=float(finite.std(ddof=1)) if n > 1 else 0.0,
            bin_edges=tuple(float(e) for e in edges),
            bin_shares=tuple(float(s) for s in shares),
            quantiles=tuple(float(q) for q in qs),
            levels=() if levels is None else tuple(float(v) for v in levels[0]),
            level_counts=() if levels is None else tuple(int(k) for k in levels[1]),
        )

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **{k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in self.__dict__.items()}}
        if not self.levels:  # as format 1 wrote it
            del data["levels"], data["level_counts"]
        return data


@dataclass(frozen=True)
class CategoricalProfile:
    """Summary of one categorical, string or boolean column."""

    name: str
    dtype: str
    count: int
    missing: int
    categories: tuple[Any, ...]
    counts: tuple[int, ...]
    other_count: int = 0
    kind: ClassVar[Literal["categorical"]] = "categorical"

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    @property
    def frequencies(self) -> dict[Any, float]:
        """Share of each category among non-missing rows."""
        return {c: k / self.count for c, k in zip(self.categories, self.counts, strict=True)}

    @classmethod
    def from_series(cls, name: str, dtype: str, series: pd.Series, *,
                    max_categories: int) -> CategoricalProfile:
        missing = int(series.isna().sum())
        counts = series.value_counts(dropna=True, sort=True)
        # Most frequent first; ties broken by the category's text so the profile is stable.
        ordered = sorted(zip(counts.index, counts.to_numpy(), strict=True),
                         key=lambda kv: (-int(kv[1]), str(kv[0])))
        kept, rest = ordered[:max_categories], ordered[max_categories:]
        return cls(
            name=name, dtype=dtype, count=int(counts.sum()), missing=missing,
            categories=tuple(json_value(c) for c, _ in kept),
            counts=tuple(int(k) for _, k in kept),
            other_count=int(sum(int(k) for _, k in rest)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: (list(v) if isinstance(v, tuple) else v)
                                      for k, v in self.__dict__.items()}}


ColumnProfile = NumericProfile | CategoricalProfile


def _column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in data.items() if k != "kind"}
    if data["kind"] == "numeric":
        return NumericProfile(**fields)
    if data["kind"] == "categorical":
        return CategoricalProfile(**fields)
    raise ValidationError(f"unknown column profile kind {data['kind']!r}.")


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-column summaries of the training data, its target and the model's outputs.

    Examples
    --------
    >>> X = pd.DataFrame({"age": [20.0, 30.0, 40.0, None], "sex": ["f", "m", "f", "f"]})
    >>> profile = ReferenceProfile.from_frame(X, bins=2, quantiles=3)
    >>> profile.features["age"].bin_edges, profile.features["age"].missing
    ((20.0, 30.0, 40.0), 1)
    >>> profile.features["sex"].frequencies
    {'f': 0.75, 'm': 0.25}
    >>> ReferenceProfile.from_bytes(profile.to_bytes()) == profile
    True
    """

    n_rows: int
    features: Mapping[str, ColumnProfile]
    outputs: Mapping[str, ColumnProfile] = field(default_factory=dict)
    target: ColumnProfile | None = None
    bins: int = 10
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_frame(
        cls,
        X: pd.DataFrame,
        *,
        y: pd.Series | None = None,
        outputs: pd.DataFrame | None = None,
        bins: int = 10,
        quantiles: int = 101,
        max_categories: int = 1000,
    ) -> ReferenceProfile:
        """Profile a training frame, its target and the model's outputs on it."""
        if not isinstance(X, pd.DataFrame) or X.shape[0] == 0:
            raise ValidationError("X must be a non-empty pandas DataFrame to profile.")
        if X.columns.has_duplicates:
            duplicate = X.columns[X.columns.duplicated()][0]
            raise ValidationError(f"X has the column {duplicate!r} twice; column names must be "
                                  "unique.")
        if bins < 2 or quantiles < 3:
            raise ValidationError("bins must be at least 2 and quantiles at least 3.")

        def profile(series: pd.Series, name: str) -> ColumnProfile:
            dtype = column_dtype(series)
            if dtype in ("integer", "float"):
                return NumericProfile.from_values(
                    name, dtype, series.to_numpy(dtype=float, na_value=np.nan), bins=bins,
                    quantiles=quantiles)
            if dtype == "datetime":
                # Seconds since the epoch, UTC (naive times are taken as UTC); NaT stays NaN.
                stamps = pd.to_datetime(series, utc=True)
                seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
                return NumericProfile.from_values(name, dtype, seconds.to_numpy(dtype=float,
                                                  na_value=np.nan), bins=bins,
                                                  quantiles=quantiles)
            return CategoricalProfile.from_series(name, dtype, series,
                                                  max_categories=max_categories)

        features = {check_feature_name(c): profile(X[c], c) for c in X.columns}
        out = {str(c): profile(outputs[c], str(c)) for c in outputs.columns} \
            if outputs is not None else {}
        target = profile(y, str(y.name)) if y is not None else None
        return cls(n_rows=int(X.shape[0]), features=features, outputs=out, target=target,
                   bins=bins)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "n_rows": self.n_rows,
            "bins": self.bins,
            "features": [p.to_dict() for p in self.features.values()],
            "outputs": [p.to_dict() for p in self.outputs.values()],
            "target": self.target.to_dict() if self.target is not None else None,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        version = data.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ValidationError(
                f"reference profile format {version!r} is not supported by this keepwell "
                f"(it reads formats {', '.join(map(str, READABLE_VERSIONS))}); upgrade keepwell."
            )
        features = [_column_from_dict(d) for d in data["features"]]
        outputs = [_column_from_dict(d) for d in data["outputs"]]
        target = _column_from_dict(data["target"]) if data.get("target") else None
        return cls(n_rows=data["n_rows"], features={p.name: p for p in features},
                   outputs={p.name: p for p in outputs}, target=target, bins=data["bins"],
                   format_version=version)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        return cls.from_dict(json.loads(data))
