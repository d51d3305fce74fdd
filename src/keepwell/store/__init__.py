"""Storage: the metadata database and the artifact store."""

from __future__ import annotations

from keepwell.store.artifacts import ArtifactRef, ArtifactStore, LocalArtifactStore
from keepwell.store.db import Database

__all__ = ["ArtifactRef", "ArtifactStore", "Database", "LocalArtifactStore"]
