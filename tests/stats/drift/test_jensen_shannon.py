"""Jensen–Shannon distance against ``scipy.spatial.distance.jensenshannon`` (base 2).

Tolerance: 1e-12 relative on the same cells (NannyML and Evidently both use base 2).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from keepwell.stats.drift.binned import binned_counts
from keepwell.stats.drift.columns import column
from keepwell.stats.drift.jensen_shannon import JensenShannon, jensen_shannon_distance

from .samples import profile_of


@pytest.mark.parametrize("seed", range(10))
def test_equals_scipy_base_2(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(8))
    q[0] = 0.0
    q /= q.sum()
    assert jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2),
                                                          rel=1e-12)


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_column_equals_scipy_on_its_cells(kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "numeric":
        a, b = rng.exponential(size=3_000), rng.exponential(1.3, 2_000)
    else:
        a, b = rng.choice(list("abcd"), 3_000), rng.choice(list("abcde"), 2_000)
    reference = profile_of(a)
    ref, cur = binned_counts(column(reference, b))
    result = JensenShannon().compare(reference, b)
    assert result.statistic == pytest.approx(
        jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2), rel=1e-12)


def test_bounds() -> None:
    assert jensen_shannon_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert jensen_shannon_distance(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == 0.0
