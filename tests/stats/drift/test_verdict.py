"""The dataset verdict: Holm across columns, effect gate per column, the share rule."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from keepwell.errors import ValidationError
from keepwell.stats.drift import DriftResult, StatisticKind, holm, judge


def result(feature: str, p: float | None, effect: float, *, threshold: float = 0.1,
           alpha: float | None = 0.05) -> DriftResult:
    return DriftResult(test="ks", feature=feature, kind=StatisticKind.P_VALUE, statistic=effect,
                       p_value=p, effect=effect, effect_name="ks_d", threshold=threshold,
                       alpha=alpha, drifted=False, n_reference=100, n_current=100)


def holm_by_definition(p: list[float], alpha: float) -> list[bool]:
    """Holm's procedure as written: reject the smallest while p_(i) <= alpha / (k - i + 1)."""
    k, rejected = len(p), [False] * len(p)
    for rank, i in enumerate(sorted(range(k), key=lambda j: p[j])):
        if p[i] >= alpha / (k - rank):
            break
        rejected[i] = True
    return rejected


@pytest.mark.parametrize("seed", range(20))
def test_holm_rejects_what_the_procedure_rejects(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = list(rng.uniform(0, 0.05, 8) ** rng.uniform(0.5, 2, 8))
    assert (holm(p) < 0.05).tolist() == holm_by_definition(p, 0.05)


def test_holm_is_monotone_and_bounded() -> None:
    adjusted = holm([0.5, 0.001, 0.02, 0.9, 0.02])
    order = np.argsort([0.5, 0.001, 0.02, 0.9, 0.02], kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0) and adjusted.max() <= 1.0
    assert adjusted.tolist() == pytest.approx([1.0, 0.005, 0.08, 1.0, 0.08])


def test_a_column_needs_a_small_adjusted_p_value_and_a_large_effect() -> None:
    verdict = judge([
        result("tiny-but-certain", 1e-30, 0.01),   # n = 70,000 territory
        result("large-but-noisy", 0.03, 0.4),       # significant alone, not among 4
        result("real", 1e-6, 0.3),
        result("nothing", 0.7, 0.02),
    ])
    assert verdict.drifted_columns == ("real",)
    assert verdict["large-but-noisy"].p_value_adjusted == pytest.approx(0.06)
    assert verdict.drifted and verdict.n_drifted == 1 and verdict.share == 0.25


def test_the_share_rule() -> None:
    results = [result(f"x{i}", 1e-9 if i < 3 else 0.9, 0.3 if i < 3 else 0.0) for i in range(10)]
    assert judge(results).drifted
    assert judge(results, min_share=0.3).drifted
    assert not judge(results, min_share=0.5).drifted  # Evidently's rule misses three of ten
    assert not judge([result(f"x{i}", 0.9, 0.0) for i in range(5)], min_share=0.0).drifted


def test_results_without_a_significance_gate_keep_their_verdict() -> None:
    gated = result("gated", 0.01, 0.3)
    bare = DriftResult(test="psi", feature="bare", kind=StatisticKind.DISTANCE, statistic=0.3,
                       p_value=None, effect=0.3, effect_name="psi", threshold=0.1, alpha=None,
                       drifted=True, n_reference=10, n_current=10)
    verdict = judge([gated, bare])
    assert verdict["bare"] == bare
    assert verdict["gated"].p_value_adjusted == pytest.approx(0.01)  # a family of one


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="alpha"):
        judge([], alpha=0.0)
    with pytest.raises(ValidationError, match="min_share"):
        judge([], min_share=1.5)
    with pytest.raises(ValidationError, match="same feature"):
        judge([result("a", 0.1, 0.1), result("a", 0.2, 0.2)])
    with pytest.raises(KeyError):
        judge([result("a", 0.1, 0.1)])["b"]


def test_the_verdict_serialises_to_json() -> None:
    verdict = judge([result(f"x{i}", p, e) for i, (p, e) in
                     enumerate(itertools.product([1e-9, 0.5], [0.0, 0.5]))])
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["drifted_columns"] == ["x1"] and len(data["columns"]) == 4
