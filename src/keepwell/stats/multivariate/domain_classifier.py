"""Multivariate drift from a domain classifier: can a model tell current rows from reference?

Label the reference rows 0 and the current rows 1, train a gradient-boosted classifier on
part of them and score the rest, k times over (stratified k-fold, so every row is scored once
by a model that never saw it), and measure how well the scores separate the two sets by the
ROC AUC. 0.5: the rows are exchangeable, nothing drifted that the classifier can see; 1.0:
every current row is recognisable. Any change in the joint distribution counts, also ones no
column shows alone (a correlation that changed sign).

NannyML's ``DomainClassifierCalculator`` (0.13) does the same with LightGBM and no
confidence interval; it alerts when the AUC leaves the band [0.45, 0.65]. Here the model is
scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (categorical columns
handled natively), the AUC gets DeLong's confidence interval, and the set drifted when the
interval's lower end is above ``threshold`` (0.55): the classifier separates the sets
better than AUC 0.55, with the interval's confidence. AUC 0.55 is what a perfect classifier
reaches when one normal column moves by 0.18 standard deviations (``AUC = Φ(d / √2)``); the
quarter-deviation shift keepwell's univariate tests take as the smallest material change
gives 0.57, and a cross-validated classifier falls somewhat short of the perfect one.

The interval is the sampling uncertainty of the AUC of the pooled out-of-fold scores, the
scores taken as given (DeLong et al.); it leaves out the variation between refits of the
classifier, which is small next to it once each side has a few hundred rows.

Source: DeLong, E. R., DeLong, D. M. & Clarke-Pearson, D. L. (1988), "Comparing the areas
under two or more correlated receiver operating characteristic curves: a nonparametric
approach", *Biometrics* 44(3); Sun, X. & Xu, W. (2014), "Fast implementation of DeLong's
algorithm", *IEEE Signal Processing Letters* 21(11) (the midrank form used here); Lopez-Paz,
D. & Oquab, M. (2017), "Revisiting classifier two-sample tests", ICLR; NannyML,
``nannyml/drift/multivariate/domain_classifier/calculator.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from keepwell.errors import ValidationError
from keepwell.stats.drift.reference import is_numeric_values
from keepwell.stats.multivariate._frames import as_frame, check_columns, numbers

__all__ = ["DomainClassifierDrift", "DomainClassifierResult", "delong_auc"]

FloatArray = NDArray[np.float64]
MAX_CATEGORIES = 255  # HistGradientBoostingClassifier's limit (max_bins); the rarest pool


def delong_auc(labels: Any, scores: Any) -> tuple[float, float]:
    """ROC AUC of ``scores`` for ``labels`` (1 positive, 0 negative) and DeLong's variance.

    With ``m`` positives and ``n`` negatives, each positive's placement is the share of
    negatives scored below it, ``V10_i = (R_i - R⁺_i) / n``, and each negative's the share of
    positives scored above it, ``V01_j = 1 - (R_j - R⁻_j) / m`` (``R`` midranks among all
    scores, ``R⁺``/``R⁻`` among the positives/negatives; ties count one half). Then
    ``AUC = mean(V10)`` (the Mann–Whitney statistic, equal to
    ``sklearn.metrics.roc_auc_score``) and ``Var = s²(V10) / m + s²(V01) / n`` (ddof 1).

    Source: DeLong et al. (1988), *Biometrics* 44(3); Sun & Xu (2014), *IEEE SPL* 21(11).

    Raises
    ------
    ValidationError
        The labels are not 0/1, a class is missing, or the lengths differ.

    Examples
    --------
    >>> auc, var = delong_auc([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    >>> round(auc, 4), round(var, 4)
    (0.8889, 0.0247)
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValidationError(f"labels and scores must be 1-D of one length, not {y.shape} "
                              f"and {s.shape}.")
    if not np.isin(y, (0, 1)).all() or not np.isfinite(s).all():
        raise ValidationError("labels must be 0 or 1 and scores finite numbers.")
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValidationError(f"labels: DeLong's variance needs two rows of each class, not "
                              f"{m} positive and {n} negative.")
    ordered = np.concatenate([s[positive], s[~positive]])
    ranks = stats.rankdata(ordered)
    v10 = (ranks[:m] - stats.rankdata(ordered[:m])) / n
    v01 = 1.0 - (ranks[m:] - stats.rankdata(ordered[m:])) / m
    return float(v10.mean()), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


@dataclass(frozen=True)
class DomainClassifierResult:
    """How well a classifier tells current rows from reference rows.

    ``auc`` is the cross-validated ROC AUC (current rows the positives), ``auc_lower`` and
    ``auc_upper`` its DeLong interval at ``confidence`` (clipped to [0, 1]) and
    ``standard_error`` DeLong's. ``drifted`` is ``auc_lower > threshold``. It is a distance:
    higher means drift. ``n_reference`` and ``n_current`` count the rows used (after
    subsampling to ``max_rows`` a side, when ``subsampled``).
    """

    auc: float
    auc_lower: float
    auc_upper: float
    standard_error: float
    confidence: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    n_folds: int
    subsampled: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain floats, ints and bools."""
        return asdict(self)


class DomainClassifierDrift:
    """Cross-validated ROC AUC of a classifier trained to tell current rows from reference.

    See the module docstring for the method and the default threshold.

    Parameters
    ----------
    threshold : float, default 0.55
        The set drifted when the lower end of the AUC's interval is above this.
    confidence : float, default 0.95
        Two-sided confidence of DeLong's interval.
    n_folds : int, default 5
        Folds of the stratified cross-validation (NannyML's default).
    max_rows : int or None, default 5,000
        Rows kept of each side, sampled without replacement when there are more; ``None``
        keeps all. The classifier's cost grows with the rows, the precision only with their
        square root: at 5,000 a side the AUC's standard error is about 0.006 (0.0058 at
        AUC 0.5), so an AUC of 0.57 still clears the default threshold.
    categorical : sequence of str, optional
        Columns to treat as categorical although they hold numbers. Strings, booleans and
        pandas categoricals are categorical anyway; numbers and datetimes numeric.
    max_iter : int, default 100
        Most boosting rounds (``HistGradientBoostingClassifier.max_iter``); each fold's model
        stops early when its loss on a held-out tenth of its training rows has not improved
        for 10 rounds, which keeps it from fitting noise when nothing drifted.
    random_state : int, default 0
        Seeds the subsampling, the folds and the classifier: equal inputs give equal results
        (the classifier runs on one thread, so on any machine).

    Raises
    ------
    ValidationError
        From :meth:`compare`: a parameter is out of range, a column is missing, a frame is
        empty or has fewer than ``2 * n_folds`` rows, a reference column is all missing, or
        a numeric column holds something else.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def sample(n, sign):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"a": x, "b": sign * x + rng.normal(0, 0.5, n)})
    >>> test = DomainClassifierDrift(max_iter=20)
    >>> test.compare(sample(400, 1), sample(400, 1)).drifted
    False
    >>> result = test.compare(sample(400, 1), sample(400, -1))
    >>> result.drifted, result.auc > 0.9
    (True, True)
    """

    name: ClassVar[str] = "domain_classifier"

    def __init__(self, threshold: float = 0.55, confidence: float = 0.95, n_folds: int = 5,
                 max_rows: int | None = 5_000, categorical: Sequence[str] | None = None,
                 max_iter: int = 100, random_state: int = 0) -> None:
        self.threshold = threshold
        self.confidence = confidence
        self.n_folds = n_folds
        self.max_rows = max_rows
        self.categorical = categorical
        self.max_iter = max_iter
        self.random_state = random_state

    def __repr__(self) -> str:
        names = ("threshold", "confidence", "n_folds", "max_rows", "categorical", "max_iter",
                 "random_state")
        return f"DomainClassifierDrift({', '.join(f'{k}={getattr(self, k)!r}' for k in names)})"

    def compare(self, reference: pd.DataFrame | Mapping[str, Any],
                current: pd.DataFrame | Mapping[str, Any], *,
                columns: Sequence[str] | None = None) -> DomainClassifierResult:
        """Train the classifier on ``reference`` (label 0) against ``current`` (label 1).

        ``columns`` defaults to every column of ``reference``.
        """
        self._check_params()
        ref = as_frame(reference, what="reference")
        cur = as_frame(current, what="current")
        names = [str(c) for c in ref.columns] if columns is None else list(columns)
        for frame, what in ((ref, "reference"), (cur, "current")):
            check_columns(frame, names, what=what)
            if len(frame) < 2 * self.n_folds:
                raise ValidationError(f"{what}: {len(frame)} rows are too few; {self.n_folds}-"
                                      f"fold cross-validation needs {2 * self.n_folds} or more.")
        subsampled = self.max_rows is not None and max(len(ref), len(cur)) > self.max_rows
        rng = np.random.default_rng(self.random_state)
        ref, cur = self._subsample(ref, rng), self._subsample(cur, rng)
        features, is_categorical = self._features(ref, cur, names)
        labels = np.repeat(np.array([0, 1]), [len(ref), len(cur)])
        scores = self._out_of_fold_scores(features, labels, is_categorical)
        auc, variance = delong_auc(labels, scores)
        se = math.sqrt(max(variance, 0.0))
        z = float(special.ndtri(0.5 + self.confidence / 2))
        lower, upper = max(auc - z * se, 0.0), min(auc + z * se, 1.0)
        return DomainClassifierResult(
            auc=auc, auc_lower=lower, auc_upper=upper, standard_error=se,
            confidence=float(self.confidence), threshold=float(self.threshold),
            drifted=lower > self.threshold, n_reference=len(ref), n_current=len(cur),
            n_folds=self.n_folds, subsampled=subsampled)

    def _check_params(self) -> None:
        def whole(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        if not (isinstance(self.threshold, int | float) and 0.5 <= self.threshold < 1.0):
            raise ValidationError(f"threshold must be an AUC in [0.5, 1), not "
                                  f"{self.threshold!r}.")
        if not (isinstance(self.confidence, float) and 0.0 < self.confidence < 1.0):
            raise ValidationError(f"confidence must be in (0, 1), not {self.confidence!r}.")
        if not (whole(self.n_folds) and self.n_folds >= 2):
            raise ValidationError(f"n_folds must be an int >= 2, not {self.n_folds!r}.")
        if self.max_rows is not None and not (whole(self.max_rows)
                                              and self.max_rows >= 2 * self.n_folds):
            raise ValidationError(f"max_rows must be None or an int >= 2 * n_folds, not "
                                  f"{self.max_rows!r}.")
        if not (whole(self.max_iter) and self.max_iter >= 1):
            raise ValidationError(f"max_iter must be an int >= 1, not {self.max_iter!r}.")
        if isinstance(self.categorical, str):
            raise ValidationError(f"categorical must be a list of column names, not the "
                                  f"string {self.categorical!r}; pass [{self.categorical!r}].")
        if not whole(self.random_state):
            raise ValidationError(f"random_state must be an int, not {self.random_state!r}.")

    def _subsample(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        if self.max_rows is None or len(frame) <= self.max_rows:
            return frame
        keep = np.sort(rng.choice(len(frame), size=self.max_rows, replace=False))
        return frame.iloc[keep]

    def _features(self, ref: pd.DataFrame, cur: pd.DataFrame,
                  names: list[str]) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Both frames stacked as floats; categories as codes by frequency, missing as NaN."""
        forced = set(self.categorical or ())
        unknown = forced - set(names)
        if unknown:
            raise ValidationError(f"categorical names {sorted(unknown)[0]!r}, which is not "
                                  "among the columns compared.")
        out = np.empty((len(ref) + len(cur), len(names)), dtype=np.float64)
        is_categorical = np.zeros(len(names), dtype=bool)
        for j, name in enumerate(names):
            if name in forced or not is_numeric_values(ref[name]):
                is_categorical[j] = True
                out[:, j] = _category_codes(ref[name], cur[name], name)
                continue
            values = numbers(ref[name], name)
            if np.isnan(values).all():
                raise ValidationError(f"reference: column {name!r} is all missing; drop it "
                                      "from columns.")
            if not is_numeric_values(cur[name]):
                raise ValidationError(f"column {name!r} is numeric in the reference but holds "
                                      f"{cur[name].dtype} values in the current data.")
            out[:len(ref), j] = values
            out[len(ref):, j] = numbers(cur[name], name)
        return out, is_categorical

    def _out_of_fold_scores(self, features: FloatArray, labels: NDArray[np.int64],
                            is_categorical: NDArray[np.bool_]) -> FloatArray:
        folds = StratifiedKFold(n_splits=self.n_folds, shuffle=True,
                                random_state=self.random_state)
        scores = np.empty(labels.size, dtype=np.float64)
        # one OpenMP thread: at these sizes the booster's many short parallel sections gain
        # little on an idle machine and lose many times over on a busy one, and one thread
        # gives the same floating-point sums, so the same result, on every machine
        with threadpool_limits(limits=1, user_api="openmp"):
            for train, test in folds.split(features, labels):
                model = HistGradientBoostingClassifier(
                    max_iter=self.max_iter, categorical_features=is_categorical,
                    early_stopping=True, random_state=self.random_state)
                model.fit(features[train], labels[train])
                scores[test] = model.predict_proba(features[test])[:, 1]
        return scores


def _category_codes(ref: pd.Series, cur: pd.Series, name: str) -> FloatArray:
    """Codes over both sides, most frequent first; past the 254th, one pooled code."""
    both = pd.concat([ref.astype(object), cur.astype(object)], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=True)
    if (codes[: len(ref)] < 0).all():
        raise ValidationError(f"reference: column {name!r} is all missing; drop it from "
                              "columns.")
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    rank = np.empty(len(uniques), dtype=np.float64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(uniques))
    rank = np.minimum(rank, MAX_CATEGORIES - 1)
    return np.where(codes >= 0, rank[np.maximum(codes, 0)], np.nan)
