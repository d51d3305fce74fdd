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
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keepwell.audit import record_event
from keepwell.errors import (
    AliasConflictError,
    UnsafeArtifactError,
    ValidationError,
)
from keepwell.registry.aliases import ANY, AliasOperations
from keepwell.registry.base import utc_now
from keepwell.registry.evaluation import holdout_metrics, model_outputs
from keepwell.registry.flavors import detect_flavor, get_flavor
from keepwell.registry.lifecycle import LifecycleOperations
from keepwell.registry.lineage import data_fingerprint, library_versions
from keepwell.registry.monitoring import fit_references
from keepwell.registry.names import check_alias, check_model_name
from keepwell.registry.profile import ReferenceProfile
from keepwell.registry.records import ModelVersion
from keepwell.registry.signature import Signature, Task
from keepwell.registry.subjects import SubjectSet
from keepwell.registry.traffic import TrafficOperations
from keepwell.store.tables import canonical_json, model_versions, models

__all__ = ["ANY", "Registry", "model_params"]


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

class Registry(AliasOperations, LifecycleOperations, TrafficOperations):
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
        holdout_outputs = None
        if holdout is not None:
            X_hold, y_hold = holdout
            _, y_hold_series = self._check_training_data(model, X_hold, y_hold)
            assert y_hold_series is not None
            hold_outputs = model_outputs(model, X_hold, signature.task)
            measured = holdout_metrics(model, X_hold, y_hold_series, signature.task,
                                       outputs=hold_outputs)
            holdout_outputs = (y_hold_series, hold_outputs)
        measured.update({k: float(v) for k, v in (metrics or {}).items()})
        references = fit_references(X, signature, holdout_outputs)

        subject_set = None
        if subjects is not None:
            if len(subjects) != len(X):
                raise ValidationError(f"subjects has {len(subjects)} keys and X has {len(X)} "
                                      "rows; pass one key per training row.")
            subject_set = SubjectSet.from_keys(subjects)

        model_ref = self.artifacts.put_bytes(artifact)
        profile_ref = self.artifacts.put_bytes(profile.to_bytes())
        references_bytes = canonical_json(references).encode()
        references_ref = self.artifacts.put_bytes(references_bytes)
        subjects_ref = self.artifacts.put_bytes(subject_set.to_bytes()) \
            if subject_set is not None else None
        params = model_params(model)
        modules = {type(model).__module__.split(".")[0]}
        now = utc_now()
        with self.db.write() as conn:
            # Under the lock: a concurrent delete of a version with the same bytes may have
            # removed the file after put_bytes found it present.
            for data, ref in ((artifact, model_ref), (profile.to_bytes(), profile_ref),
                              (references_bytes, references_ref)):
                if not self.artifacts.exists(ref.sha256):
                    self.artifacts.put_bytes(data)
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
                "monitoring_sha256": references_ref.sha256,
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
                                "monitoring_sha256": references_ref.sha256,
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

    def card(self, ref: str, *, format: str = "markdown") -> str:
        """The model card of a version, as Markdown or HTML."""
        from keepwell.registry.card import render_card

        version = self.get_version(ref)
        return render_card(self.get_model(version.model), version,
                           self.load_profile(version.ref),
                           self.alias_history(version.model), format=format)

