"""Everything a check needs to know about the model version whose rows it judges."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from keepwell.registry.profile import ReferenceProfile
from keepwell.registry.registry import Registry
from keepwell.registry.signature import Signature
from keepwell.stats.estimation import CBPE
from keepwell.stats.multivariate import ReconstructionDrift

__all__ = ["VersionContext", "output_columns"]


@dataclass(frozen=True)
class VersionContext:
    """A version's signature, reference profile, holdout metrics and fitted references.

    ``references`` holds what was fitted for monitoring at registration (the CBPE calibration,
    the PCA of the training data), as stored in the version's monitoring artifact; it is empty
    for versions registered without one.
    """

    model: str
    version: int
    signature: Signature
    profile: ReferenceProfile
    holdout: Mapping[str, float] = field(default_factory=dict)
    sensitive_features: tuple[str, ...] = ()
    references: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.signature.task

    @property
    def features(self) -> list[str]:
        return self.signature.feature_names

    @functools.cached_property
    def reconstruction(self) -> ReconstructionDrift | None:
        """The PCA fitted at registration, rebuilt once per context (not once per window)."""
        state = self.references.get("reconstruction")
        return None if state is None else ReconstructionDrift.from_dict(state)

    @functools.cached_property
    def cbpe(self) -> CBPE | None:
        """The CBPE calibrated on the holdout at registration, rebuilt once per context."""
        state = self.references.get("cbpe")
        return None if state is None else CBPE.from_dict(state)

    @classmethod
    def load(cls, registry: Registry, model: str, version: int) -> VersionContext:
        """Read one version's context from the registry (verified artifact reads)."""
        info = registry.get_model(model)
        record = registry.get_version(f"{model}@{version}")
        references: dict[str, Any] = {}
        if record.monitoring_sha256 is not None:
            references = json.loads(registry.artifacts.get_bytes(record.monitoring_sha256))
        return cls(model=model, version=version, signature=record.signature,
                   profile=registry.load_profile(record.ref), holdout=dict(record.metrics),
                   sensitive_features=tuple(info.sensitive_features), references=references)


def output_columns(frame: pd.DataFrame) -> list[str]:
    """The model-output columns a logged frame holds: ``prediction``, ``score``,
    ``proba_<class>``."""
    return [c for c in frame.columns
            if c in ("prediction", "score") or str(c).startswith("proba_")]
