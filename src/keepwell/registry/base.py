"""What every part of the registry shares: the stores, the actor, and reading rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from keepwell.config import RegistrySettings
from keepwell.errors import (
    AliasNotFoundError,
    InvalidStateError,
    ModelNotFoundError,
    UnsafeArtifactError,
    VersionNotFoundError,
)
from keepwell.registry.flavors import get_flavor
from keepwell.registry.names import ModelRef, parse_ref
from keepwell.registry.profile import ReferenceProfile
from keepwell.registry.records import ModelInfo, ModelVersion
from keepwell.registry.signature import Signature
from keepwell.store.artifacts import ArtifactStore
from keepwell.store.db import Database
from keepwell.store.tables import aliases, model_versions, models

__all__ = ["RegistryBase", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RegistryBase:
    """The registry's stores and its read operations.

    Parameters
    ----------
    db, artifacts:
        The metadata database and the artifact store.
    settings:
        The registry's settings (trusted types, profile resolution).
    actor:
        Who is acting; recorded with every change.
    """

    def __init__(self, db: Database, artifacts: ArtifactStore, settings: RegistrySettings,
                 actor: str) -> None:
        self.db = db
        self.artifacts = artifacts
        self.settings = settings
        self.actor = actor

    # -- reading --------------------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(models).where(models.c.name == name)).one_or_none()
        if row is None:
            raise ModelNotFoundError(f"no model named {name!r}; `keepwell models list` shows "
                                     "the registered ones.")
        return row

    def _version_row(self, conn: Connection, model_id: int, name: str,
                     version: int) -> Row[Any]:
        row = conn.execute(select(model_versions).where(
            model_versions.c.model_id == model_id,
            model_versions.c.version == version)).one_or_none()
        if row is None:
            raise VersionNotFoundError(f"model {name!r} has no version {version}; "
                                       f"`keepwell versions list {name}` shows them.")
        return row

    def _aliases_of(self, conn: Connection, model_id: int) -> dict[str, int]:
        rows = conn.execute(select(aliases.c.alias, aliases.c.version)
                            .where(aliases.c.model_id == model_id).order_by(aliases.c.alias))
        return {r.alias: r.version for r in rows}

    def _resolve(self, conn: Connection, ref: str | ModelRef) -> tuple[Row[Any], Row[Any]]:
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        model_row = self._model_row(conn, parsed.name)
        version = parsed.version
        if version is None:
            assert parsed.alias is not None
            version = self._aliases_of(conn, model_row.id).get(parsed.alias)
            if version is None:
                raise AliasNotFoundError(
                    f"model {parsed.name!r} has no alias {parsed.alias!r}; set it with "
                    f"`keepwell alias set {parsed.name} {parsed.alias} VERSION`.")
        return model_row, self._version_row(conn, model_row.id, parsed.name, version)

    def _to_version(self, name: str, row: Row[Any], alias_map: Mapping[str, int]
                    ) -> ModelVersion:
        return ModelVersion(
            model=name, version=row.version, status=row.status, flavor=row.flavor,
            artifact_sha256=row.artifact_sha256, artifact_size=row.artifact_size,
            profile_sha256=row.profile_sha256, signature=Signature.from_dict(row.signature),
            params=row.params, metrics=row.metrics, tags=row.tags,
            data_fingerprint=row.data_fingerprint, parent_version=row.parent_version,
            libraries=row.libraries, reason=row.reason, created_at=row.created_at,
            created_by=row.created_by,
            aliases=tuple(a for a, v in alias_map.items() if v == row.version),
            subjects_sha256=row.subjects_sha256,
            monitoring_sha256=row.monitoring_sha256,
        )

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """A version by ``name``, ``name@alias`` or ``name@number`` (``name`` = champion)."""
        with self.db.read() as conn:
            model_row, row = self._resolve(conn, ref)
            return self._to_version(model_row.name, row, self._aliases_of(conn, model_row.id))

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        with self.db.read() as conn:
            model_row = self._model_row(conn, name)
            alias_map = self._aliases_of(conn, model_row.id)
            query = select(model_versions).where(model_versions.c.model_id == model_row.id)
            if not include_deleted:
                query = query.where(model_versions.c.status != "deleted")
            rows = conn.execute(query.order_by(model_versions.c.version))
            return [self._to_version(name, r, alias_map) for r in rows]

    def get_model(self, name: str) -> ModelInfo:
        with self.db.read() as conn:
            return self._to_model(conn, self._model_row(conn, name))

    def list_models(self) -> list[ModelInfo]:
        with self.db.read() as conn:
            rows = conn.execute(select(models).order_by(models.c.name)).all()
            return [self._to_model(conn, r) for r in rows]

    def _to_model(self, conn: Connection, row: Row[Any]) -> ModelInfo:
        latest = conn.execute(select(func.max(model_versions.c.version))
                              .where(model_versions.c.model_id == row.id)).scalar()
        return ModelInfo(name=row.name, task=row.task, description=row.description,
                         target=row.target, sensitive_features=tuple(row.sensitive_features),
                         allow_unsafe_formats=row.allow_unsafe_formats,
                         created_at=row.created_at, created_by=row.created_by,
                         latest_version=latest, aliases=self._aliases_of(conn, row.id))

    def load_model(self, ref: str | ModelRef, *, allow_archived: bool = False) -> Any:
        """The model object of a version, after verifying its sha256.

        Raises
        ------
        ArtifactIntegrityError
            The stored file changed since registration.
        UnsafeArtifactError
            A pickle or joblib version of a model not opted in to unsafe formats.
        InvalidStateError
            The version is deleted (or archived, unless ``allow_archived``).
        """
        with self.db.read() as conn:
            model_row, row = self._resolve(conn, ref)
        self._check_loadable(model_row.name, row, allow_archived)
        flavor = get_flavor(row.flavor)
        if flavor.executes_code and not model_row.allow_unsafe_formats:
            raise UnsafeArtifactError(
                f"{model_row.name}@{row.version} is stored as {row.flavor}, and model "
                f"{model_row.name!r} is not allowed to load code-executing formats. An operator "
                "can allow it with `Registry.configure_model(..., allow_unsafe_formats=True)`.")
        data = self.artifacts.get_bytes(row.artifact_sha256)  # verifies the pinned sha256
        return flavor.load(data, trusted_types=self.settings.trusted_types)

    def load_profile(self, ref: str | ModelRef) -> ReferenceProfile:
        """The version's reference profile, verified against its sha256."""
        with self.db.read() as conn:
            _, row = self._resolve(conn, ref)
        return ReferenceProfile.from_bytes(self.artifacts.get_bytes(row.profile_sha256))

    @staticmethod
    def _check_loadable(name: str, row: Row[Any], allow_archived: bool) -> None:
        if row.status == "deleted" or (row.status == "archived" and not allow_archived):
            raise InvalidStateError(f"{name}@{row.version} is {row.status} and cannot be "
                                    "loaded or served.")

