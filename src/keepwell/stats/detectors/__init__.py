"""Streaming concept-drift detectors: DDM, EDDM, ADWIN, Page-Hinkley and KSWIN.

Each detector is a small class in a module of its own, with River's API: ``update(x)`` feeds a
value and ``drift_detected`` says whether it completed a detection; ``update_many(values)``
feeds a batch and returns the indices of the detections, exactly as the loop would, many times
faster. :data:`DETECTORS` maps stable ids to the classes, and
:mod:`keepwell.stats.detectors.evaluation` measures any of them on streams with known changes.

>>> from keepwell.stats.detectors import ADWIN
>>> detector = ADWIN()
>>> detector.update(1.0)
>>> detector.drift_detected
False
"""

from __future__ import annotations

from keepwell.stats.detectors.adwin import ADWIN
from keepwell.stats.detectors.base import DriftDetector, InputKind, WarningDetector
from keepwell.stats.detectors.ddm import DDM
from keepwell.stats.detectors.eddm import EDDM
from keepwell.stats.detectors.kswin import KSWIN
from keepwell.stats.detectors.page_hinkley import PageHinkley, PageHinkleyMode
from keepwell.stats.detectors.registry import DETECTORS, DetectorRegistry

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTORS",
    "EDDM",
    "KSWIN",
    "DetectorRegistry",
    "DriftDetector",
    "InputKind",
    "PageHinkley",
    "PageHinkleyMode",
    "WarningDetector",
]
