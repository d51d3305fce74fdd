"""The drift tests by stable string id: an explicit, immutable registry object.

The ids are the ones stored configurations (``keepwell.yaml``, check results) use, and they
are Evidently's for the same tests, so a config written for one reads naturally in the
other. Nothing registers itself on import: :data:`DRIFT_TESTS` is built from a literal list
below, and a plugin's registry is a new object (:meth:`DriftTestRegistry.extended`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from keepwell.errors import ConfigurationError
from keepwell.stats.drift.base import DriftTest
from keepwell.stats.drift.chi_square import ChiSquare
from keepwell.stats.drift.hellinger import Hellinger
from keepwell.stats.drift.jensen_shannon import JensenShannon
from keepwell.stats.drift.kolmogorov_smirnov import KolmogorovSmirnov
from keepwell.stats.drift.kullback_leibler import KullbackLeibler
from keepwell.stats.drift.population_stability import PopulationStabilityIndex
from keepwell.stats.drift.proportions import TwoProportionZTest
from keepwell.stats.drift.wasserstein import Wasserstein

__all__ = ["DRIFT_TESTS", "DriftTestRegistry"]


class DriftTestRegistry:
    """Drift test classes by their ``name``, in registration order.

    Examples
    --------
    >>> registry = DriftTestRegistry([KolmogorovSmirnov, ChiSquare])
    >>> registry.names
    ('ks', 'chisquare')
    >>> registry.get("ks")
    <class 'keepwell.stats.drift.kolmogorov_smirnov.KolmogorovSmirnov'>
    >>> registry.create("ks", threshold=0.2)
    KolmogorovSmirnov(alpha=0.05, threshold=0.2)
    >>> [test.__name__ for test in registry]
    ['KolmogorovSmirnov', 'ChiSquare']
    """

    def __init__(self, tests: Iterable[type[DriftTest]]) -> None:
        self._tests: dict[str, type[DriftTest]] = {}
        for test in tests:
            if test.name in self._tests:
                raise ConfigurationError(f"two drift tests are named {test.name!r}: "
                                         f"{self._tests[test.name].__name__} and "
                                         f"{test.__name__}; drift test names must be unique.")
            self._tests[test.name] = test

    @property
    def names(self) -> tuple[str, ...]:
        """The stable ids, in registration order."""
        return tuple(self._tests)

    def get(self, name: str) -> type[DriftTest]:
        """The test class registered as ``name``.

        Raises
        ------
        ConfigurationError
            No test has that name; the message lists the known ones.
        """
        try:
            return self._tests[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown drift test {name!r}; the known ones are "
                f"{', '.join(sorted(self._tests))}.") from None

    def create(self, name: str, /, **params: Any) -> DriftTest:
        """An instance of the test ``name`` with ``params`` (as a stored config holds them)."""
        return self.get(name)(**params)

    def extended(self, tests: Iterable[type[DriftTest]]) -> DriftTestRegistry:
        """A new registry with these tests added (this one is unchanged)."""
        return DriftTestRegistry([*self._tests.values(), *tests])

    def __contains__(self, name: object) -> bool:
        return name in self._tests

    def __iter__(self) -> Iterator[type[DriftTest]]:
        return iter(self._tests.values())

    def __len__(self) -> int:
        return len(self._tests)

    def __repr__(self) -> str:
        return f"DriftTestRegistry({list(self._tests)})"


DRIFT_TESTS = DriftTestRegistry([
    KolmogorovSmirnov,
    Wasserstein,
    PopulationStabilityIndex,
    JensenShannon,
    KullbackLeibler,
    Hellinger,
    ChiSquare,
    TwoProportionZTest,
])
