"""The streaming drift detectors by stable string id: an explicit, immutable registry object.

Stored configurations (``keepwell.yaml``, monitor definitions) name a detector by its id and
build it with :meth:`DetectorRegistry.create`. The ids are River's module names. Nothing
registers itself on import: :data:`DETECTORS` is built from a literal list below, and a
plugin's registry is a new object (:meth:`DetectorRegistry.extended`), the same shape as
:mod:`keepwell.stats.drift.registry` for the batch drift tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from keepwell.errors import ConfigurationError
from keepwell.stats.detectors.adwin import ADWIN
from keepwell.stats.detectors.base import DriftDetector
from keepwell.stats.detectors.ddm import DDM
from keepwell.stats.detectors.eddm import EDDM
from keepwell.stats.detectors.kswin import KSWIN
from keepwell.stats.detectors.page_hinkley import PageHinkley

__all__ = ["DETECTORS", "DetectorRegistry"]


class DetectorRegistry:
    """Detector classes by their ``name``, in registration order.

    Examples
    --------
    >>> from keepwell.stats.detectors import DETECTORS
    >>> DETECTORS.names
    ('adwin', 'ddm', 'eddm', 'kswin', 'page_hinkley')
    >>> DETECTORS.create("adwin", delta=0.01)
    ADWIN(delta=0.01, clock=32, max_buckets=5, min_window_length=5, grace_period=10)
    """

    def __init__(self, detectors: Iterable[type[DriftDetector]]) -> None:
        self._detectors: dict[str, type[DriftDetector]] = {}
        for detector in detectors:
            if not (isinstance(detector, type) and issubclass(detector, DriftDetector)):
                raise ConfigurationError(
                    f"{detector!r} is not a DriftDetector subclass; only detectors can be "
                    "registered."
                )
            known = self._detectors.get(detector.name)
            if known is not None:
                raise ConfigurationError(
                    f"two drift detectors are named {detector.name!r}: {known.__name__} and "
                    f"{detector.__name__}; detector names must be unique."
                )
            self._detectors[detector.name] = detector

    @property
    def names(self) -> tuple[str, ...]:
        """The stable ids, in registration order."""
        return tuple(self._detectors)

    def get(self, name: str) -> type[DriftDetector]:
        """The detector class registered as ``name``.

        Raises
        ------
        ConfigurationError
            No detector has that name; the message lists the known ones.
        """
        try:
            return self._detectors[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown drift detector {name!r}; the known ones are "
                f"{', '.join(sorted(self._detectors))}."
            ) from None

    def create(self, name: str, /, **params: Any) -> DriftDetector:
        """A new detector ``name`` with ``params`` (as a stored config holds them)."""
        return self.get(name)(**params)

    def extended(self, detectors: Iterable[type[DriftDetector]]) -> DetectorRegistry:
        """A new registry with these detectors added (this one is unchanged)."""
        return DetectorRegistry([*self._detectors.values(), *detectors])

    def __contains__(self, name: object) -> bool:
        return name in self._detectors

    def __iter__(self) -> Iterator[type[DriftDetector]]:
        return iter(self._detectors.values())

    def __len__(self) -> int:
        return len(self._detectors)

    def __repr__(self) -> str:
        return f"DetectorRegistry({list(self._detectors)})"


DETECTORS = DetectorRegistry([ADWIN, DDM, EDDM, KSWIN, PageHinkley])
"""keepwell's five detectors."""
