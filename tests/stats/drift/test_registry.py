"""The registry: stable ids, explicit construction, no import side effects."""

from __future__ import annotations

import importlib

import pytest

import keepwell.stats.drift as drift
from keepwell.errors import ConfigurationError
from keepwell.stats.drift import DRIFT_TESTS, DriftTest, DriftTestRegistry, KolmogorovSmirnov
from keepwell.stats.drift.registry import DRIFT_TESTS as FROM_MODULE

EXPECTED = ("ks", "wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "chisquare", "z")


def test_the_ids_are_stable_and_evidentlys() -> None:
    assert DRIFT_TESTS.names == EXPECTED
    assert len(DRIFT_TESTS) == len(EXPECTED)
    assert [test.name for test in DRIFT_TESTS] == list(EXPECTED)
    assert all("ks" in r for r in (DRIFT_TESTS, FROM_MODULE))


def test_every_drift_test_of_the_package_is_registered() -> None:
    exported = {getattr(drift, n) for n in drift.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, DriftTest)
               and c is not DriftTest}
    assert classes == set(DRIFT_TESTS)


def test_get_and_create() -> None:
    assert DRIFT_TESTS.get("ks") is KolmogorovSmirnov
    test = DRIFT_TESTS.create("psi", threshold=0.2, epsilon=1e-3)
    assert test.params() == {"alpha": 0.05, "threshold": 0.2, "epsilon": 1e-3}
    with pytest.raises(ConfigurationError, match=r"unknown drift test 'kolmogorov'.*chisquare"):
        DRIFT_TESTS.get("kolmogorov")
    assert "kolmogorov" not in DRIFT_TESTS


def test_names_must_be_unique() -> None:
    class Impostor(KolmogorovSmirnov):
        pass

    with pytest.raises(ConfigurationError, match="named 'ks'"):
        DriftTestRegistry([KolmogorovSmirnov, Impostor])


def test_extending_makes_a_new_registry_and_importing_changes_nothing() -> None:
    class Energy(KolmogorovSmirnov):
        name = "energy"

    extended = DRIFT_TESTS.extended([Energy])
    assert extended.names == (*EXPECTED, "energy")
    assert DRIFT_TESTS.names == EXPECTED
    for module in ("kolmogorov_smirnov", "chi_square", "wasserstein"):
        importlib.reload(importlib.import_module(f"keepwell.stats.drift.{module}"))
    assert DRIFT_TESTS.names == EXPECTED
    assert repr(DriftTestRegistry([KolmogorovSmirnov])) == "DriftTestRegistry(['ks'])"
