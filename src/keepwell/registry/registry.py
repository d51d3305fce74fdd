"""The model registry: immutable versions, audited aliases, safe loading.

Every state change runs in one :meth:`Database.write` transaction together with its audit event
(and, for alias moves, its alias-history row), so the registry, the alias history and the audit
log always agree and are applied in one serial order.

Artifacts (the model file and its reference profile) are written before the version row: a
crash in between leaves only unreferenced, content-addressed objects, never a version pointing
at a missing file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keepwell.audit import record_event
from keepwell.config import RegistrySettings
from keepwell.errors import (
    AliasConflictError,
    AliasNotFoundError,
    InvalidStateError,
    ModelNotFoundError,
    UnsafeArtifactError,
    ValidationError,
    VersionNotFoundError,
)
from keepwell.registry.evaluation import holdout_metrics, model_outputs
from keepwell.registry.flavors import detect_flavor, get_flavor
from keepwell.registry.lineage import data_fingerprint, library_versions
from keepwell.registry.names import CHAMPION, ModelRef, check_alias, check_model_name, parse_ref
from keepwell.registry.profile import ReferenceProfile
from keepwell.registry.records import AliasMove, ModelInfo, ModelVersion
from keepwell.registry.signature import Signature, Task
from keepwell.registry.subjects import SubjectSet
from keepwell.store.artifacts import ArtifactStore
from keepwell.store.db import Database
from keepwell.store.tables import alias_history, aliases, model_versions, models

__all__ = ["ANY", "Registry"]


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""``expected_version`` default of :meth:`Registry.set_alias`: move whatever the alias holds."""


def _now() -> datetime:
    return datetime.now(UTC)


def _scalar(value: Any) -> Any:
    """A JSON scalar for ``value``, or ``_SKIP`` when it is not one."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return _SKIP


_SKIP = object()


def model_params(model: Any) -> dict[str, Any]:
    """The model's hyper-parameters as flat JSON, nested steps included.

    ``get_params(deep=True)`` names nested parameters ``step__param``; scalars and lists of
    scalars are kept as they are, nested estimators become their class name, and anything else
    (step lists, callables) is left out: the model file holds the whole object.
    """
    if not hasattr(model, "get_params"):
        return {}
    params: dict[str, Any] = {}
    for name, value in sorted(model.get_params(deep=True).items()):
        if hasattr(value, "get_params"):
            params[name] = type(value).__name__
        elif isinstance(value, list | tuple) and all(_scalar(v) is not _SKIP for v in value):
            params[name] = [_scalar(v) for v in value]
        elif (scalar := _scalar(value)) is not _SKIP:
            params[name] = scalar
    return params


class Registry:
    """Register, find, alias, roll back and load model versions.

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

    # -- registering ----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        X: pd.DataFrame,
        y: pd.Series | Sequence[Any] | None = None,
        *,
        task: Task | None = None,
        holdout: tuple[pd.DataFrame, pd.Series | Sequence[Any]] | None = None,
        metrics: Mapping[str, float] | None = None,
        parent: int | None = None,
        reason: str = "",
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        sensitive_features: Sequence[str] = (),
        subjects: Sequence[Any] | pd.Series | None = None,
        flavor: str = "skops",
        trust_pickle: bool | str = False,
        alias: str | None = None,
        request_id: str | None = None,
    ) -> ModelVersion:
        """Store a trained model as a new immutable version of ``name``.

        ``model`` is a fitted scikit-learn estimator or pipeline (LightGBM and XGBoost through
        their scikit-learn API), or the path of a saved model file (skops, or pickle/joblib
        with ``trust_pickle``). ``X`` and ``y`` are the training data: the signature, the
        reference profile and the data fingerprint are taken from them.

        ``trust_pickle`` opts this model into code-executing formats: ``True`` for an
        in-memory model stored with ``flavor='pickle'`` or ``'joblib'``, or, for a pickle or
        joblib *file*, the file's sha256, which must match before it is ever unpickled.

        ``subjects`` gives, per training row, the key of the person or entity the row is about;
        their hashes are kept so that an erasure request can tell which versions were trained
        on a subject (:meth:`versions_trained_on`).

        Raises
        ------
        UnsafeArtifactError
            A pickle/joblib file without a matching ``trust_pickle``, or types not trusted.
        ValidationError
            The model is not fitted, or does not fit ``X``; ``X`` or ``y`` are malformed.
        """
        check_model_name(name)
        if alias is not None:
            check_alias(alias)
        model, flavor, artifact = self._prepare_artifact(model, flavor, trust_pickle)
        X, y_series = self._check_training_data(model, X, y)
        signature = self._signature(model, X, y_series, task)
        outputs = model_outputs(model, X, signature.task)
        profiled_y = y_series
        if signature.task != "regression":
            # Class labels are profiled as categories: their frequencies are what drifts.
            outputs["prediction"] = outputs["prediction"].astype("category")
            profiled_y = y_series.astype("category") if y_series is not None else None
        profile = ReferenceProfile.from_frame(
            X, y=profiled_y, outputs=outputs, bins=self.settings.profile_bins,
            quantiles=self.settings.profile_quantiles,
            max_categories=self.settings.profile_max_categories)
        measured: dict[str, float] = {}
        if holdout is not None:
            X_hold, y_hold = holdout
            _, y_hold_series = self._check_training_data(model, X_hold, y_hold)
            assert y_hold_series is not None
            measured = holdout_metrics(model, X_hold, y_hold_series, signature.task)
        measured.update({k: float(v) for k, v in (metrics or {}).items()})

        subject_set = None
        if subjects is not None:
            if len(subjects) != len(X):
                raise ValidationError(f"subjects has {len(subjects)} keys and X has {len(X)} "
                                      "rows; pass one key per training row.")
            subject_set = SubjectSet.from_keys(subjects)

        model_ref = self.artifacts.put_bytes(artifact)
        profile_ref = self.artifacts.put_bytes(profile.to_bytes())
        subjects_ref = self.artifacts.put_bytes(subject_set.to_bytes()) \
            if subject_set is not None else None
        params = model_params(model)
        modules = {type(model).__module__.split(".")[0]}
        now = _now()
        with self.db.write() as conn:
            model_row = conn.execute(select(models).where(models.c.name == name)).one_or_none()
            created = model_row is None
            if model_row is None:
                model_id = conn.execute(insert(models).values(
                    name=name, task=signature.task, description=description or "",
                    target=signature.target, sensitive_features=list(sensitive_features),
                    allow_unsafe_formats=bool(trust_pickle), created_at=now,
                    created_by=self.actor)).inserted_primary_key[0]  # type: ignore[index]
            else:
                model_id = model_row.id
                if model_row.task != signature.task:
                    raise ValidationError(
                        f"model {name!r} is a {model_row.task} model; this version is "
                        f"{signature.task}. Register it under another name.")
                if flavor in ("pickle", "joblib") and not model_row.allow_unsafe_formats:
                    conn.execute(update(models).where(models.c.id == model_id)
                                 .values(allow_unsafe_formats=True))
            version = (conn.execute(select(func.max(model_versions.c.version))
                                    .where(model_versions.c.model_id == model_id)).scalar()
                       or 0) + 1
            if parent is not None:
                self._version_row(conn, model_id, name, parent)
            values = {
                "model_id": model_id, "version": version, "status": "ready", "flavor": flavor,
                "artifact_sha256": model_ref.sha256, "artifact_size": model_ref.size,
                "profile_sha256": profile_ref.sha256,
                "subjects_sha256": subjects_ref.sha256 if subjects_ref is not None else None,
                "signature": signature.to_dict(),
                "params": params, "metrics": measured, "tags": dict(tags or {}),
                "data_fingerprint": data_fingerprint(X, y_series), "parent_version": parent,
                "libraries": library_versions(modules), "reason": reason, "created_at": now,
                "created_by": self.actor,
            }
            try:
                conn.execute(insert(model_versions).values(**values))
            except IntegrityError:
                raise AliasConflictError(f"version {version} of {name!r} was registered "
                                         "concurrently; retry.") from None
            record_event(conn, actor=self.actor, action="version.register",
                         target=f"{name}@{version}",
                         before=None,
                         after={"model_created": created, "flavor": flavor,
                                "artifact_sha256": model_ref.sha256,
                                "profile_sha256": profile_ref.sha256,
                                "data_fingerprint": values["data_fingerprint"],
                                "parent_version": parent,
                                "allow_unsafe_formats": bool(trust_pickle) or None},
                         reason=reason, request_id=request_id)
            if alias is not None:
                self._move_alias(conn, model_id, name, alias, version, ANY, "set", reason,
                                 request_id)
        return self.get_version(f"{name}@{version}")

    def _prepare_artifact(self, model: Any, flavor: str,
                          trust_pickle: bool | str) -> tuple[Any, str, bytes]:
        """The model object, its flavor and its bytes, refusing unsafe files unopened."""
        trusted = self.settings.trusted_types
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            with open(model, "rb") as f:
                data = f.read()
            detected = detect_flavor(data, str(model))
            if get_flavor(detected).executes_code:
                digest = hashlib.sha256(data).hexdigest()
                if not isinstance(trust_pickle, str) or trust_pickle.lower().removeprefix(
                        "sha256:") != digest:
                    raise UnsafeArtifactError(
                        f"this is a {detected} file, and loading it would run any code it "
                        "contains. keepwell refused it without opening it. Convert the model "
                        "to skops, or, if you trust the file, pass trust_pickle='<its sha256>' "
                        "(`--trust-pickle SHA256` on the command line)."
                    )
            return get_flavor(detected).load(data, trusted_types=trusted), detected, data
        selected = get_flavor(flavor)
        if selected.executes_code and trust_pickle is not True:
            raise UnsafeArtifactError(
                f"flavor {flavor!r} runs code when loaded; pass trust_pickle=True to opt this "
                "model in, or use the default flavor 'skops'."
            )
        data = selected.dump(model, trusted_types=trusted)
        return model, selected.name, data

    def _check_training_data(self, model: Any, X: Any, y: Any
                             ) -> tuple[pd.DataFrame, pd.Series | None]:
        if not isinstance(X, pd.DataFrame):
            raise ValidationError("X must be a pandas DataFrame whose columns are the "
                                  "model's features.")
        if X.shape[0] == 0:
            raise ValidationError("X has no rows; pass the data the model was trained on.")
        if not hasattr(model, "predict"):
            raise ValidationError(f"{type(model).__name__} has no predict(); register a "
                                  "fitted scikit-learn-style estimator.")
        try:
            check_is_fitted(model)
        except NotFittedError:
            raise ValidationError(f"this {type(model).__name__} is not fitted; call fit() "
                                  "before registering it.") from None
        except TypeError:
            pass  # not a scikit-learn estimator; predict() below will tell
        expected = getattr(model, "feature_names_in_", None)
        if expected is not None and list(expected) != [str(c) for c in X.columns]:
            missing = sorted(set(map(str, expected)) - set(map(str, X.columns)))
            raise ValidationError(
                "X's columns are not the ones the model was fitted on"
                + (f" (missing: {', '.join(missing[:5])})" if missing else " (order differs)")
                + "; pass the training frame with the same columns in the same order.")
        y_series: pd.Series | None = None
        if y is not None:
            y_series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
            if y_series.name is None:
                y_series = y_series.rename("target")
            if len(y_series) != len(X):
                raise ValidationError(f"y has {len(y_series)} rows and X has {len(X)}; they must "
                                      "have one label per row.")
            y_series = y_series.set_axis(X.index)
        return X, y_series

    def _signature(self, model: Any, X: pd.DataFrame, y: pd.Series | None,
                   task: Task | None) -> Signature:
        classes = getattr(model, "classes_", None)
        if task is None and classes is not None:
            task = "binary" if len(classes) == 2 else "multiclass"
        elif task is None and y is None:
            task = "regression"
        plain = tuple(c.item() if isinstance(c, np.generic) else c for c in classes) \
            if classes is not None else None
        return Signature.from_frame(X, y, task=task, classes=plain)

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

    # -- aliases --------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, expected_version: Any = ANY,
                  reason: str = "", request_id: str | None = None) -> AliasMove:
        """Point ``alias`` at ``version``.

        With ``expected_version`` (a version number, or ``None`` for "not set"), the move
        happens only if the alias still points there, like HTTP ``If-Match``; otherwise
        :class:`AliasConflictError`. Moving an alias to where it already points changes
        nothing and records nothing.
        """
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            return self._move_alias(conn, model_row.id, name, alias, version, expected_version,
                                    "set", reason, request_id)

    def _move_alias(self, conn: Connection, model_id: int, name: str, alias: str,
                    version: int | None, expected: Any, action: str, reason: str,
                    request_id: str | None) -> AliasMove:
        current = self._aliases_of(conn, model_id).get(alias)
        if expected is not ANY and current != expected:
            raise AliasConflictError(
                f"{name}@{alias} points to {current if current is not None else 'nothing'}, "
                f"not {expected}; someone moved it. Read it again and retry.")
        if version is not None:
            row = self._version_row(conn, model_id, name, version)
            if row.status != "ready":
                raise InvalidStateError(f"{name}@{version} is {row.status}; only ready versions "
                                        "can carry an alias.")
        now = _now()
        if current == version:
            return AliasMove(name, alias, current, version, action, self.actor, reason, now,
                             None)
        if version is None:
            conn.execute(aliases.delete().where(aliases.c.model_id == model_id,
                                                aliases.c.alias == alias))
        elif current is None:
            conn.execute(insert(aliases).values(model_id=model_id, alias=alias, version=version,
                                                updated_at=now))
        else:
            conn.execute(update(aliases).where(aliases.c.model_id == model_id,
                                               aliases.c.alias == alias)
                         .values(version=version, updated_at=now))
        event = record_event(conn, actor=self.actor, action=f"alias.{action}",
                             target=f"{name}@{alias}", before={"version": current},
                             after={"version": version}, reason=reason, request_id=request_id)
        conn.execute(insert(alias_history).values(
            model_id=model_id, alias=alias, from_version=current, to_version=version,
            action=action, actor=self.actor, reason=reason, at=now, audit_seq=event.seq))
        return AliasMove(name, alias, current, version, action, self.actor, reason, now,
                         event.seq)

    def delete_alias(self, name: str, alias: str, *, reason: str = "",
                     request_id: str | None = None) -> AliasMove:
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            if alias not in self._aliases_of(conn, model_row.id):
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}.")
            return self._move_alias(conn, model_row.id, name, alias, None, ANY, "delete",
                                    reason, request_id)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        with self.db.read() as conn:
            model_row = self._model_row(conn, name)
            return self._history(conn, model_row.id, name, alias)

    def _history(self, conn: Connection, model_id: int, name: str,
                 alias: str | None) -> list[AliasMove]:
        query = select(alias_history).where(alias_history.c.model_id == model_id)
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        return [AliasMove(name, r.alias, r.from_version, r.to_version, r.action, r.actor,
                          r.reason, r.at, r.audit_seq)
                for r in conn.execute(query.order_by(alias_history.c.id))]

    def rollback(self, name: str, *, alias: str = CHAMPION, reason: str = "",
                 request_id: str | None = None) -> AliasMove:
        """Move ``alias`` back to the version it pointed to before its current one.

        The alias history is replayed as a stack (a set pushes, a rollback pops), so rolling
        back twice goes back two champions, not back and forth. Versions archived or deleted
        since are skipped.
        """
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            stack: list[int] = []
            for move in self._history(conn, model_row.id, name, alias):
                if move.action == "rollback":
                    stack.pop()
                elif move.to_version is None:
                    stack.clear()
                else:
                    stack.append(move.to_version)
            if not stack:
                raise InvalidStateError(f"{name}@{alias} is not set; nothing to roll back.")
            current = stack.pop()
            status = dict(conn.execute(
                select(model_versions.c.version, model_versions.c.status)
                .where(model_versions.c.model_id == model_row.id)).all())
            while stack and (stack[-1] == current or status.get(stack[-1]) != "ready"):
                stack.pop()
            if not stack:
                raise InvalidStateError(
                    f"{name}@{alias} has no earlier version that can still be served; set the "
                    f"alias explicitly with `keepwell alias set {name} {alias} VERSION`.")
            return self._move_alias(conn, model_row.id, name, alias, stack[-1], current,
                                    "rollback", reason, request_id)

    def versions_trained_on(self, subject: str) -> list[ModelVersion]:
        """Versions whose training data held ``subject`` (among those registered with
        ``subjects``), oldest first. Deleted versions are included: their lineage remains."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(models.c.name, model_versions)
                .join(models, models.c.id == model_versions.c.model_id)
                .where(model_versions.c.subjects_sha256.is_not(None))
                .order_by(models.c.name, model_versions.c.version)).all()
        found = []
        for row in rows:
            if subject in SubjectSet.from_bytes(self.artifacts.get_bytes(row.subjects_sha256)):
                found.append(self.get_version(f"{row.name}@{row.version}"))
        return found

    # -- lifecycle ------------------------------------------------------------------------

    def archive_version(self, name: str, version: int, *, reason: str = "",
                        request_id: str | None = None) -> ModelVersion:
        """Retire a version: it stays readable for audit and analysis, but is never served."""
        return self._set_status(name, version, "archived", reason, request_id)

    def delete_version(self, name: str, version: int, *, reason: str = "",
                       request_id: str | None = None) -> ModelVersion:
        """Delete a version: its row stays for lineage, its model file is removed."""
        deleted = self._set_status(name, version, "deleted", reason, request_id)
        with self.db.read() as conn:
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

    def card(self, ref: str, *, format: str = "markdown") -> str:
        """The model card of a version, as Markdown or HTML."""
        from keepwell.registry.card import render_card

        version = self.get_version(ref)
        return render_card(self.get_model(version.model), version,
                           self.load_profile(version.ref),
                           self.alias_history(version.model), format=format)
