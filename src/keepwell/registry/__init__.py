"""The model registry: versions, aliases, signatures, reference profiles, flavors, cards."""

from __future__ import annotations

from keepwell.registry.names import ModelRef, parse_ref
from keepwell.registry.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from keepwell.registry.records import AliasMove, ModelInfo, ModelVersion
from keepwell.registry.registry import ANY, Registry
from keepwell.registry.signature import ColumnSpec, Signature
from keepwell.registry.traffic import TrafficPolicy

__all__ = [
    "ANY",
    "AliasMove",
    "CategoricalProfile",
    "ColumnSpec",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "NumericProfile",
    "ReferenceProfile",
    "Registry",
    "Signature",
    "TrafficPolicy",
    "parse_ref",
]
