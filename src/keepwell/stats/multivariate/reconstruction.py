"""Multivariate drift from the PCA reconstruction error (NannyML's data reconstruction method).

A PCA fitted on the reference keeps the directions that hold most of its variance. Rows that
follow the reference's correlation structure are rebuilt well from those directions; rows
that break it (a correlation that changed sign, a new combination of categories) are not,
even when every column's own distribution is unchanged. The mean distance between the rows
and their rebuilt selves, compared with the same mean over chunks of the reference, is the
drift signal.

The steps are NannyML's ``DataReconstructionDriftCalculator`` (0.13), reproduced in numpy so
the fitted state is plain numbers that serialise to JSON (:meth:`ReconstructionDrift.to_dict`):

1. impute: numeric columns with their reference mean, categorical ones with their most
   frequent reference value (ties: the smallest, as ``SimpleImputer`` does);
2. encode each category as its share of the imputed reference rows (``CountEncoder``,
   ``normalize=True``); a category the reference never held becomes 0;
3. standardise every column by its reference mean and standard deviation (ddof 0; a
   constant column keeps scale 1, as ``StandardScaler`` does);
4. PCA of the centred reference (the eigenvectors of its scatter matrix), keeping the
   fewest components whose explained variance exceeds ``n_components`` (0.65), or
   ``n_components`` components if an integer;
5. a row's error is ``‖z - z̃‖₂``, with ``z̃ = μ + (z - μ) VᵀV`` its reconstruction.

Thresholds, as NannyML's defaults: the reference is cut in order into chunks of
``chunk_size`` rows (default ``n // 10``, the remainder kept as a last, smaller chunk), each
chunk's mean error computed, and the band is their mean ± 3 standard deviations (ddof 0).
A lower bound at or below 0 is dropped (``None``). A window drifts when its mean error is
outside the band. The band describes chunks of the reference's chunk size: a window much
smaller than that has a noisier mean error and raises more false alarms, so choose
``chunk_size`` close to the size of the windows you score.

Source: NannyML, ``nannyml/drift/multivariate/data_reconstruction/calculator.py`` and
``nannyml/thresholds.py`` (StandardDeviationThreshold); Jolliffe, I. T. (2002), *Principal
Component Analysis*, 2nd ed., §10.1 (reconstruction error for outlier detection).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell._values import json_value
from keepwell.errors import InvalidStateError, ValidationError
from keepwell.stats.drift.reference import is_numeric_values
from keepwell.stats.multivariate._frames import as_frame, check_columns, numbers

__all__ = ["ReconstructionDrift", "ReconstructionResult"]

FloatArray = NDArray[np.float64]
FORMAT = 1  # version of the layout to_dict writes


@dataclass(frozen=True)
class ReconstructionResult:
    """The mean reconstruction error of a window against the reference band.

    ``error`` is the mean of the rows' errors, ``error_std`` their standard deviation (ddof 1;
    ``None`` for one row) and ``sampling_error`` ``error_std / √n`` (NannyML's). The window
    drifted when ``error`` is not strictly between ``lower_threshold`` (``None``: no lower
    bound) and ``upper_threshold``. It is a distance: higher means drift.
    """

    error: float
    error_std: float | None
    sampling_error: float | None
    lower_threshold: float | None
    upper_threshold: float
    drifted: bool
    n: int
    n_components: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain floats, ints, bools and ``None``."""
        return asdict(self)


@dataclass(frozen=True)
class _Column:
    """How one column is imputed and encoded: ``fill`` replaces missing values; a categorical
    column maps ``categories`` to ``shares`` (the rest to 0)."""

    name: str
    kind: str  # "numeric" or "categorical"
    fill: Any
    categories: tuple[Any, ...] = ()
    shares: tuple[float, ...] = ()


class ReconstructionDrift:
    """PCA reconstruction error of a window, against the band of the reference's chunks.

    See the module docstring for the method, which is NannyML's
    ``DataReconstructionDriftCalculator`` with its default settings; the errors agree with
    NannyML's to 1e-9 relative on the same chunks.

    Parameters
    ----------
    n_components : float or int, default 0.65
        A float in (0, 1): keep the fewest components whose explained variance ratio sums to
        more than it. An int: keep that many.
    chunk_size : int, optional
        Rows per reference chunk for the threshold band; by default ``n_reference // 10``.
    std_multiplier : float, default 3.0
        Half-width of the band in standard deviations of the chunks' mean errors.

    Attributes
    ----------
    columns_ : tuple of str
        The columns, in the order given to :meth:`fit`.
    lower_threshold_, upper_threshold_ : float or None, float
        The band.
    reference_errors_ : tuple of float
        The mean error of each reference chunk.

    Raises
    ------
    ValidationError
        From :meth:`fit` and :meth:`score`: a parameter is out of range, a column is missing,
        the frame is empty or too short, a reference column is all missing, or a numeric
        column holds something else.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2_000)
    >>> reference = pd.DataFrame({"a": x, "b": x + rng.normal(0, 0.3, 2_000)})
    >>> detector = ReconstructionDrift().fit(reference)
    >>> detector.score(reference[:200]).drifted
    False
    >>> y = rng.normal(size=200)
    >>> detector.score(pd.DataFrame({"a": y, "b": -y + rng.normal(0, 0.3, 200)})).drifted
    True
    """

    name: ClassVar[str] = "reconstruction"

    def __init__(self, n_components: float | int = 0.65, chunk_size: int | None = None,
                 std_multiplier: float = 3.0) -> None:
        self.n_components = n_components
        self.chunk_size = chunk_size
        self.std_multiplier = std_multiplier

    def __repr__(self) -> str:
        return (f"ReconstructionDrift(n_components={self.n_components!r}, "
                f"chunk_size={self.chunk_size!r}, std_multiplier={self.std_multiplier!r})")

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, reference: pd.DataFrame | Mapping[str, Any],
            columns: Sequence[str] | None = None) -> ReconstructionDrift:
        """Learn the encoding, the components and the threshold band from ``reference``.

        ``columns`` defaults to every column of ``reference``. Numbers and datetimes are
        numeric; strings, booleans and categoricals are categorical. Returns ``self``.
        """
        frame = as_frame(reference, what="reference")
        names = [str(c) for c in frame.columns] if columns is None else list(columns)
        check_columns(frame, names, what="reference")
        n = len(frame)
        chunk = self.chunk_size if self.chunk_size is not None else n // 10
        self._check_params(n, chunk)
        specs: list[_Column] = []
        for name in names:
            series = frame[name]
            if is_numeric_values(series):
                values = numbers(series, name)
                if np.isnan(values).all():
                    raise _all_missing(name)
                specs.append(_Column(name, "numeric", float(np.nanmean(values))))
            else:
                specs.append(_categorical_spec(series, name))
        encoded = _encode(frame, specs)
        mean = encoded.mean(axis=0)
        var = encoded.var(axis=0)
        eps = np.finfo(np.float64).eps  # StandardScaler's test for a constant column:
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        scale = np.where(constant, 1.0, np.sqrt(var))
        z = (encoded - mean) / scale
        pca_mean = z.mean(axis=0)
        centred = z - pca_mean
        # the eigenvectors of the scatter matrix are the right singular vectors of the centred
        # data (scikit-learn's "covariance_eigh" solver, which PCA picks for n >= 10 p)
        variance, vectors = np.linalg.eigh(centred.T @ centred)
        variance, vectors = np.maximum(variance[::-1], 0.0), vectors[:, ::-1]
        if not variance.sum() > 0:
            raise ValidationError("every reference column is constant: PCA has nothing to "
                                  "reconstruct; pass columns that vary.")
        ratio = variance / variance.sum()
        if isinstance(self.n_components, float):
            k = int(np.searchsorted(np.cumsum(ratio), self.n_components, side="right")) + 1
        elif self.n_components <= min(n, ratio.size):
            k = self.n_components
        else:
            raise ValidationError(f"n_components={self.n_components} is more than the "
                                  f"{min(n, ratio.size)} the reference allows (columns, rows).")
        components = np.ascontiguousarray(vectors[:, :k].T)
        errors = _row_errors(centred, components)
        starts = np.arange(0, n, chunk)
        chunk_errors = np.add.reduceat(errors, starts) / np.diff(np.append(starts, n))
        centre, spread = float(chunk_errors.mean()), float(chunk_errors.std())
        lower = centre - self.std_multiplier * spread
        # every learned attribute is set here, at the end: a fit that fails changes nothing
        self.columns_ = tuple(names)
        self.specs_ = tuple(specs)
        self.mean_, self.scale_, self.pca_mean_ = mean, scale, pca_mean
        self.components_ = components
        self.explained_variance_ratio_ = ratio[:k].copy()
        self.reference_errors_ = tuple(float(e) for e in chunk_errors)
        self.lower_threshold_ = lower if lower > 0 else None
        self.upper_threshold_ = centre + self.std_multiplier * spread
        self.n_reference_ = n
        return self

    def _check_params(self, n: int, chunk: int) -> None:
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, int | float):
            raise ValidationError(f"n_components must be a float in (0, 1) or an int, not {k!r}.")
        if isinstance(k, float) and not 0.0 < k < 1.0:
            raise ValidationError(f"n_components as a float must be in (0, 1), not {k!r}; "
                                  "pass an int to keep that many components.")
        if isinstance(k, int) and not k >= 1:
            raise ValidationError(f"n_components must be at least 1, not {k!r}.")
        if not (isinstance(self.std_multiplier, int | float)
                and math.isfinite(self.std_multiplier) and self.std_multiplier > 0):
            raise ValidationError(f"std_multiplier must be a positive number, not "
                                  f"{self.std_multiplier!r}.")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool)
                                            or not isinstance(self.chunk_size, int)
                                            or self.chunk_size < 2):
            raise ValidationError(f"chunk_size must be an int >= 2, not {self.chunk_size!r}.")
        if chunk < 2 or n < 2 * chunk:
            need = 20 if self.chunk_size is None else 2 * self.chunk_size
            raise ValidationError(f"reference: {n} rows are too few; the threshold band needs "
                                  f"at least {need} (two chunks of two rows or more).")

    # -- scoring ---------------------------------------------------------------------------

    def score(self, frame: pd.DataFrame | Mapping[str, Any]) -> ReconstructionResult:
        """The mean reconstruction error of ``frame`` (one window) and whether it drifted.

        Missing values are imputed as in the reference (an all-missing column too, as NannyML
        does; data-quality checks are where a column that went missing shows).
        """
        self._check_fitted()
        data = as_frame(frame, what="current")
        check_columns(data, list(self.columns_), what="current")
        z = (_encode(data, self.specs_) - self.mean_) / self.scale_
        errors = _row_errors(z - self.pca_mean_, self.components_)
        n = errors.size
        mean = float(errors.mean())
        std = float(errors.std(ddof=1)) if n > 1 else None
        lower, upper = self.lower_threshold_, self.upper_threshold_
        inside = (lower is None or lower < mean) and mean < upper
        return ReconstructionResult(
            error=mean, error_std=std, sampling_error=None if std is None else std / math.sqrt(n),
            lower_threshold=lower, upper_threshold=upper, drifted=not inside, n=n,
            n_components=int(self.components_.shape[0]))

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise InvalidStateError("this ReconstructionDrift is not fitted: call fit(reference) "
                                    "or ReconstructionDrift.from_dict(stored) first.")

    # -- storage ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The parameters and the fitted state as JSON-safe values (no pickle).

        ``ReconstructionDrift.from_dict(d)`` scores exactly as this detector does: every float
        is kept at full precision (``json`` writes the shortest repr that reads back equal).
        """
        self._check_fitted()
        return {
            "method": self.name, "format": FORMAT,
            "params": {"n_components": self.n_components, "chunk_size": self.chunk_size,
                       "std_multiplier": self.std_multiplier},
            "columns": [{"name": s.name, "kind": s.kind, "fill": s.fill,
                         "mean": float(m), "scale": float(c),
                         **({"categories": list(s.categories), "shares": list(s.shares)}
                            if s.kind == "categorical" else {})}
                        for s, m, c in zip(self.specs_, self.mean_, self.scale_, strict=True)],
            "pca_mean": self.pca_mean_.tolist(),
            "components": self.components_.tolist(),
            "explained_variance_ratio": self.explained_variance_ratio_.tolist(),
            "reference_errors": list(self.reference_errors_),
            "lower_threshold": self.lower_threshold_,
            "upper_threshold": self.upper_threshold_,
            "n_reference": self.n_reference_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReconstructionDrift:
        """A fitted detector from :meth:`to_dict`'s output.

        Raises
        ------
        ValidationError
            ``data`` is not a stored reconstruction detector, or is of a newer format.
        """
        if data.get("method") != cls.name or data.get("format") != FORMAT:
            raise ValidationError(f"not a stored reconstruction detector of format {FORMAT} "
                                  f"(method {data.get('method')!r}, format "
                                  f"{data.get('format')!r}); refit it with this keepwell.")
        try:
            detector = cls(**data["params"])
            columns = data["columns"]
            detector.specs_ = tuple(
                _Column(c["name"], c["kind"], c["fill"], tuple(c.get("categories", ())),
                        tuple(float(s) for s in c.get("shares", ()))) for c in columns)
            detector.columns_ = tuple(s.name for s in detector.specs_)
            detector.mean_ = np.array([c["mean"] for c in columns], dtype=np.float64)
            detector.scale_ = np.array([c["scale"] for c in columns], dtype=np.float64)
            detector.pca_mean_ = np.array(data["pca_mean"], dtype=np.float64)
            detector.components_ = np.array(data["components"], dtype=np.float64)
            detector.explained_variance_ratio_ = np.array(data["explained_variance_ratio"],
                                                          dtype=np.float64)
            detector.reference_errors_ = tuple(float(e) for e in data["reference_errors"])
            lower = data["lower_threshold"]
            detector.lower_threshold_ = None if lower is None else float(lower)
            detector.upper_threshold_ = float(data["upper_threshold"])
            detector.n_reference_ = int(data["n_reference"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"the stored reconstruction detector is incomplete or "
                                  f"malformed ({exc!r}); refit it.") from exc
        p = len(detector.specs_)
        if detector.components_.ndim != 2 or detector.components_.shape[1] != p:
            raise ValidationError(f"the stored components do not match its {p} columns; refit.")
        return detector


def _encode(frame: pd.DataFrame, specs: Sequence[_Column]) -> FloatArray:
    """Impute and encode: one float column per feature, in the order of ``specs``."""
    out = np.empty((len(frame), len(specs)), dtype=np.float64)
    for j, spec in enumerate(specs):
        series = frame[spec.name]
        if spec.kind == "numeric":
            if not is_numeric_values(series):
                raise ValidationError(f"column {spec.name!r} is numeric in the reference but "
                                      f"holds {series.dtype} values now; send numbers.")
            values = numbers(series, spec.name)
            out[:, j] = np.where(np.isnan(values), spec.fill, values)
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            share = dict(zip(spec.categories, spec.shares, strict=True))
            table = np.array([share.get(json_value(u), 0.0) for u in uniques] +
                             [share[spec.fill]], dtype=np.float64)
            out[:, j] = table[codes]  # code -1 (missing) reads the last entry: the fill's
    return out


def _row_errors(centred: FloatArray, components: FloatArray) -> FloatArray:
    """``‖c (I - VᵀV)‖₂`` per centred row ``c``: its distance to its reconstruction."""
    residual = centred @ (np.eye(components.shape[1]) - components.T @ components)
    errors: FloatArray = np.sqrt(np.einsum("ij,ij->i", residual, residual))
    return errors


def _all_missing(name: str) -> ValidationError:
    return ValidationError(f"reference: column {name!r} is all missing; drop it from columns.")


def _categorical_spec(series: pd.Series, name: str) -> _Column:
    """Mode and shares of a categorical reference column, after imputing the mode."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    per_code = np.bincount(codes[codes >= 0], minlength=len(uniques))
    if per_code.sum() == 0:
        raise _all_missing(name)
    counts: dict[Any, int] = {}
    for value, count in zip(uniques, per_code.tolist(), strict=True):
        key = json_value(value)  # values JSON keeps alike (3 and np.int64(3)) count as one
        counts[key] = counts.get(key, 0) + count
    most = max(counts.values())
    tied = [key for key, count in counts.items() if count == most]
    try:
        fill = min(tied)
    except TypeError:  # categories of mixed types: the first seen
        fill = tied[0]
    counts[fill] += int((codes < 0).sum())
    return _Column(name, "categorical", fill, tuple(counts),
                   tuple(count / len(series) for count in counts.values()))
