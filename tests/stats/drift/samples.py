"""Seeded samples for the drift tests, and the column profiles the registry would store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keepwell.registry.profile import ColumnProfile, ReferenceProfile

LEVELS = np.array(["a", "b", "c", "d", "e"])
LEVEL_SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def profile_of(values: Any, **kwargs: Any) -> ColumnProfile:
    """The column profile ``ReferenceProfile.from_frame`` stores for ``values``."""
    return ReferenceProfile.from_frame(pd.DataFrame({"x": values}), **kwargs).features["x"]


@dataclass(frozen=True)
class Trial:
    """One same-distribution trial: a reference sample, its profile, a current sample."""

    reference: np.ndarray
    profile: ColumnProfile
    current: np.ndarray


def make_trials(kind: str, count: int, n: int, seed: int) -> list[Trial]:
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(count):
        if kind == "numeric":
            a, b = rng.normal(size=n), rng.normal(size=n)
        elif kind == "categorical":
            a, b = rng.choice(LEVELS, n, p=LEVEL_SHARES), rng.choice(LEVELS, n, p=LEVEL_SHARES)
        else:  # binary
            a, b = (rng.random(n) < 0.3).astype(float), (rng.random(n) < 0.3).astype(float)
        trials.append(Trial(a, profile_of(a), b))
    return trials
