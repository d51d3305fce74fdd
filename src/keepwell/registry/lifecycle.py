"""Version lifecycle (archive, delete) and model configuration, each change audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from keepwell.audit import record_event
from keepwell.errors import InvalidStateError
from keepwell.registry.base import RegistryBase
from keepwell.registry.records import ModelInfo, ModelVersion
from keepwell.store.tables import model_versions, models

__all__ = ["LifecycleOperations"]


class LifecycleOperations(RegistryBase):
    """Archive and delete versions; configure models."""

    # -- lifecycle ------------------------------------------------------------------------

    def archive_version(self, name: str, version: int, *, reason: str = "",
                        request_id: str | None = None) -> ModelVersion:
        """Retire a version: it stays readable for audit and analysis, but is never served."""
        return self._set_status(name, version, "archived", reason, request_id)

    def delete_version(self, name: str, version: int, *, reason: str = "",
                       request_id: str | None = None) -> ModelVersion:
        """Delete a version: its row stays for lineage, its model file is removed."""
        deleted = self._set_status(name, version, "deleted", reason, request_id)
        # Check and delete under the write lock: a registration of the same bytes either
        # commits first (and the file stays) or finds the file gone and writes it again.
        with self.db.write() as conn:
            still_used = conn.execute(select(func.count()).select_from(model_versions).where(
                model_versions.c.artifact_sha256 == deleted.artifact_sha256,
                model_versions.c.status != "deleted")).scalar()
            if not still_used:
                self.artifacts.delete(deleted.artifact_sha256)
        return deleted

    def _set_status(self, name: str, version: int, status: str, reason: str,
                    request_id: str | None) -> ModelVersion:
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            row = self._version_row(conn, model_row.id, name, version)
            allowed = {"archived": ("ready",), "deleted": ("ready", "archived")}[status]
            if row.status not in allowed:
                raise InvalidStateError(f"{name}@{version} is {row.status}; it cannot become "
                                        f"{status}.")
            held = [a for a, v in self._aliases_of(conn, model_row.id).items() if v == version]
            if held:
                raise InvalidStateError(
                    f"{name}@{version} is still {', '.join(held)}; move those aliases first.")
            conn.execute(update(model_versions).where(model_versions.c.id == row.id)
                         .values(status=status))
            action = {"archived": "version.archive", "deleted": "version.delete"}[status]
            record_event(conn, actor=self.actor, action=action,
                         target=f"{name}@{version}", before={"status": row.status},
                         after={"status": status}, reason=reason, request_id=request_id)
        return self.get_version(f"{name}@{version}")

    def configure_model(self, name: str, *, description: str | None = None,
                        sensitive_features: Sequence[str] | None = None,
                        allow_unsafe_formats: bool | None = None, reason: str = "",
                        request_id: str | None = None) -> ModelInfo:
        """Change a model's settings; the change is audited with its before and after."""
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = description
        if sensitive_features is not None:
            changes["sensitive_features"] = list(sensitive_features)
        if allow_unsafe_formats is not None:
            changes["allow_unsafe_formats"] = allow_unsafe_formats
        with self.db.write() as conn:
            row = self._model_row(conn, name)
            before = {k: (list(getattr(row, k)) if k == "sensitive_features" else getattr(row, k))
                      for k in changes}
            changed = {k: v for k, v in changes.items() if before[k] != v}
            if changed:
                conn.execute(update(models).where(models.c.id == row.id).values(**changed))
                record_event(conn, actor=self.actor, action="model.configure", target=name,
                             before={k: before[k] for k in changed}, after=changed,
                             reason=reason, request_id=request_id)
        return self.get_model(name)

