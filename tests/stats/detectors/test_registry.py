"""The detector registry: stable ids, explicit construction, plugins as new registries."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

from keepwell.errors import ConfigurationError
from keepwell.stats.detectors import (
    ADWIN,
    DDM,
    DETECTORS,
    EDDM,
    KSWIN,
    DetectorRegistry,
    DriftDetector,
    PageHinkley,
)


class EveryThousand(DriftDetector):
    """A plugin: detects every 1,000th value."""

    name: ClassVar[str] = "every_thousand"

    def __init__(self) -> None:
        self._validate()
        self._reset_state()

    def _validate(self) -> None:
        pass

    def _reset_state(self) -> None:
        self._drift_detected = False
        self._n = 0

    def _update_one(self, x: float) -> None:
        self._n += 1
        self._drift_detected = self._n == 1_000

    def _advance(self, chunk: NDArray[np.float64]) -> int:
        if self._n + chunk.size < 1_000:
            self._n += chunk.size
            return -1
        at = 999 - self._n
        self._n, self._drift_detected = 1_000, True
        return at


def test_the_five_detectors_by_their_ids() -> None:
    assert DETECTORS.names == ("adwin", "ddm", "eddm", "kswin", "page_hinkley")
    assert [DETECTORS.get(n) for n in DETECTORS.names] == [ADWIN, DDM, EDDM, KSWIN, PageHinkley]
    assert list(DETECTORS) == [ADWIN, DDM, EDDM, KSWIN, PageHinkley]
    assert len(DETECTORS) == 5 and "adwin" in DETECTORS and "nope" not in DETECTORS
    assert repr(DETECTORS).startswith("DetectorRegistry(['adwin'")


def test_create_builds_with_the_stored_parameters() -> None:
    detector = DETECTORS.create("page_hinkley", threshold=20.0, mode="up")
    assert isinstance(detector, PageHinkley)
    assert detector.threshold == 20.0 and detector.mode == "up"


def test_unknown_id_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="known ones are adwin, ddm, eddm"):
        DETECTORS.get("hddm")


def test_names_must_be_unique_and_classes_detectors() -> None:
    class Impostor(ADWIN):
        pass

    with pytest.raises(ConfigurationError, match="two drift detectors are named 'adwin'"):
        DETECTORS.extended([Impostor])
    with pytest.raises(ConfigurationError, match="not a DriftDetector"):
        DetectorRegistry([dict])  # type: ignore[list-item]


def test_a_plugin_extends_into_a_new_registry() -> None:
    extended = DETECTORS.extended([EveryThousand])
    assert extended.names[-1] == "every_thousand"
    assert "every_thousand" not in DETECTORS
    detector = extended.create("every_thousand")
    assert detector.update_many(np.zeros(3_500)).tolist() == [999, 1_999, 2_999]
