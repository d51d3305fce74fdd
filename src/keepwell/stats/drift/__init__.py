"""Univariate drift tests: production data against a version's reference profile.

Each test is a small class in its own module with a stable ``name``, keyword parameters, and
one method, :meth:`~keepwell.stats.drift.base.DriftTest.compare`, returning a frozen
:class:`DriftResult`. :data:`DRIFT_TESTS` lists them by id; :func:`compare_frame` runs them
over many columns and judges the columns together (:mod:`keepwell.stats.drift.verdict`).

================== ============================ ========================================
id                 class                        columns
================== ============================ ========================================
``ks``             :class:`KolmogorovSmirnov`   numeric
``wasserstein``    :class:`Wasserstein`         numeric
``psi``            :class:`PopulationStabilityIndex` numeric (quantile bins), categorical
``jensenshannon``  :class:`JensenShannon`       numeric (quantile bins), categorical
``kl_div``         :class:`KullbackLeibler`     numeric (quantile bins), categorical
``hellinger``      :class:`Hellinger`           numeric (quantile bins), categorical
``chisquare``      :class:`ChiSquare`           categorical
``z``              :class:`TwoProportionZTest`  binary
================== ============================ ========================================

"Quantile bins": the reference's deciles, or one cell per value for a numeric column of at
most 20 values (:mod:`keepwell.stats.drift.binned`).
"""

from __future__ import annotations

from keepwell.stats.drift.base import DriftResult, DriftTest, StatisticKind, is_drift
from keepwell.stats.drift.chi_square import ChiSquare
from keepwell.stats.drift.frame import compare_frame, default_test
from keepwell.stats.drift.hellinger import Hellinger
from keepwell.stats.drift.jensen_shannon import JensenShannon
from keepwell.stats.drift.kolmogorov_smirnov import KolmogorovSmirnov
from keepwell.stats.drift.kullback_leibler import KullbackLeibler
from keepwell.stats.drift.population_stability import PopulationStabilityIndex
from keepwell.stats.drift.proportions import TwoProportionZTest
from keepwell.stats.drift.registry import DRIFT_TESTS, DriftTestRegistry
from keepwell.stats.drift.verdict import DatasetDrift, holm, judge
from keepwell.stats.drift.wasserstein import Wasserstein

__all__ = [
    "DRIFT_TESTS",
    "ChiSquare",
    "DatasetDrift",
    "DriftResult",
    "DriftTest",
    "DriftTestRegistry",
    "Hellinger",
    "JensenShannon",
    "KolmogorovSmirnov",
    "KullbackLeibler",
    "PopulationStabilityIndex",
    "StatisticKind",
    "TwoProportionZTest",
    "Wasserstein",
    "compare_frame",
    "default_test",
    "holm",
    "is_drift",
    "judge",
]
