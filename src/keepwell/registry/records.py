"""What the registry returns: frozen records of models, versions and alias moves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from keepwell.registry.signature import Signature

__all__ = ["AliasMove", "ModelInfo", "ModelVersion", "VersionStatus"]

VersionStatus = Literal["ready", "archived", "deleted"]


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.__dict__.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Signature):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value
    return out


@dataclass(frozen=True)
class ModelInfo:
    """A named deployable and where its aliases point."""

    name: str
    task: str
    description: str
    target: str | None
    sensitive_features: tuple[str, ...]
    allow_unsafe_formats: bool
    created_at: datetime
    created_by: str
    latest_version: int | None
    aliases: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a model, with its lineage."""

    model: str
    version: int
    status: VersionStatus
    flavor: str
    artifact_sha256: str
    artifact_size: int
    profile_sha256: str
    signature: Signature
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    data_fingerprint: str
    parent_version: int | None
    libraries: Mapping[str, str]
    reason: str
    created_at: datetime
    created_by: str
    aliases: tuple[str, ...] = ()
    subjects_sha256: str | None = None
    monitoring_sha256: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, as kept in the alias history."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    actor: str
    reason: str
    at: datetime
    audit_seq: int | None

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)
