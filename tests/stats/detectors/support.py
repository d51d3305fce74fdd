"""Helpers shared by the detector tests: parameters that make every detector reproducible,
non-default parameters for each, a reference loop, and seeded streams."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from keepwell.stats.detectors import DETECTORS, DriftDetector, WarningDetector
from keepwell.stats.detectors.evaluation import error_stream

# KSWIN draws a random sample; a seed makes it repeatable (every other detector is already).
REPRODUCIBLE: dict[str, dict[str, Any]] = {"kswin": {"seed": 7}}

# Every parameter away from its default, to show each one is read (and stored unchanged).
OTHER_PARAMS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.01, "clock": 7, "max_buckets": 3, "min_window_length": 9,
              "grace_period": 40},
    "ddm": {"warm_start": 100, "warning_threshold": 1.5, "drift_threshold": 2.5},
    "eddm": {"warm_start": 10, "alpha": 0.85, "beta": 0.8},
    "kswin": {"alpha": 0.01, "window_size": 150, "stat_size": 40, "seed": 3},
    "page_hinkley": {"min_instances": 10, "delta": 0.01, "threshold": 20.0, "alpha": 0.999,
                     "mode": "up"},
}


def build(name: str, **params: Any) -> DriftDetector:
    """A detector from the registry, reproducible unless ``params`` say otherwise."""
    return DETECTORS.create(name, **{**REPRODUCIBLE.get(name, {}), **params})


def loop(detector: DriftDetector, values: NDArray[np.float64]) -> list[int]:
    """The detections of ``update`` called once per value: the reference for ``update_many``."""
    found = []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def flags(detector: DriftDetector) -> tuple[bool, bool]:
    warning = detector.warning_detected if isinstance(detector, WarningDetector) else False
    return detector.drift_detected, warning


def errors(n: int, rates: tuple[float, ...], points: tuple[int, ...] = (), *, seed: int = 0,
           transition: int = 0) -> NDArray[np.float64]:
    """A seeded error stream (1 wrong, 0 right) whose rate changes at ``points``."""
    return np.array(error_stream(n, rates, points, seed=seed, transition=transition).values)


def switching(n: int = 60_000, *, seed: int = 1) -> NDArray[np.float64]:
    """An error stream whose rate alternates 0.05 / 0.45 every 5,000 values: many detections."""
    points = tuple(range(5_000, n, 5_000))
    rates = tuple(0.05 if k % 2 == 0 else 0.45 for k in range(len(points) + 1))
    return errors(n, rates, points, seed=seed)


def real_streams(n: int = 40_000, *, seed: int = 2) -> dict[str, NDArray[np.float64]]:
    """Real-valued streams with changes: normal mean shifts, heavy tails, ties (integers)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    return {
        "normal": np.concatenate([rng.normal(0, 1, half), rng.normal(0.7, 1, n - half)]),
        "student": np.concatenate([rng.standard_t(3, half), rng.standard_t(3, n - half) - 1.0]),
        "integers": np.concatenate([rng.integers(0, 5, half), rng.integers(1, 7, n - half)]
                                   ).astype(np.float64),
        "large": 1e6 + np.concatenate([rng.normal(0, 1, half), rng.normal(-0.5, 1, n - half)]),
    }


def streams_for(name: str, n: int = 40_000) -> dict[str, NDArray[np.float64]]:
    """The streams a detector reads: error streams, and real-valued ones unless binary."""
    out = {
        "step": errors(n, (0.1, 0.3), (n // 2,), seed=3),
        "switching": switching(n),
        "gradual": errors(n, (0.1, 0.4), (n // 4,), seed=4, transition=n // 4),
    }
    if DETECTORS.get(name).input_kind == "real":
        out.update(real_streams(n))
    return out


def busy(name: str, n: int = 60_000, *, seed: int = 1) -> NDArray[np.float64]:
    """A stream with many detections for this detector: ``switching`` errors, or for KSWIN
    (which hardly tells 30 bits apart) normal values whose mean alternates 0 / 2 every 1,000."""
    if name != "kswin":
        return switching(n, seed=seed)
    means = np.repeat(np.arange(n // 1_000 + 1) % 2 * 2.0, 1_000)[:n]
    return np.random.default_rng(seed).normal(means, 1.0)
