"""The workspace: one object that wires settings, stores, registry and audit log together."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from keepwell.access import Tokens
from keepwell.audit import AuditLog, record_event
from keepwell.config import Settings, load_settings
from keepwell.logbook.erasure import ErasureReport, subject_hash
from keepwell.logbook.logbook import Logbook
from keepwell.monitor.runner import Monitor
from keepwell.registry.registry import Registry
from keepwell.store.artifacts import LocalArtifactStore
from keepwell.store.db import Database

__all__ = ["SubjectErasure", "Workspace", "connect", "register"]


@dataclass(frozen=True)
class SubjectErasure:
    """What :meth:`Workspace.erase` did: the logbook's report and the versions whose training
    data held the subject."""

    logbook: ErasureReport
    trained_versions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.logbook.__dict__.items() if k != "request_ids"},
                "trained_versions": list(self.trained_versions)}


class Workspace:
    """Everything keepwell knows, opened from one :class:`Settings`.

    Opening a workspace creates the schema of an empty database; a database at an older schema
    is refused until ``keepwell db upgrade`` has run.
    """

    def __init__(self, settings: Settings, *, actor: str | None = None) -> None:
        self.settings = settings
        self.actor = actor or settings.actor
        self.db = Database(settings.database_url)
        self.db.ensure_schema()
        self.artifacts = LocalArtifactStore(settings.artifact_root)
        self.registry = Registry(self.db, self.artifacts, settings.registry, self.actor)
        self.audit = AuditLog(self.db)
        self.tokens = Tokens(self.db, self.actor)
        log = settings.logbook
        self.logbook = Logbook(settings.log_root, durability=log.durability,
                               flush_interval_ms=log.flush_interval_ms,
                               max_segment_bytes=log.max_segment_mb << 20,
                               max_segment_age_s=log.max_segment_age_s)

    @functools.cached_property
    def monitor(self) -> Monitor:
        """The monitor, configured by the ``monitor:`` section of the settings."""
        return Monitor(self.registry, self.logbook, self.settings.monitor)

    def register(self, name: str, model: Any, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """Shortcut for :meth:`keepwell.registry.Registry.register`."""
        return self.registry.register(name, model, X, y, **kwargs)

    def erase(self, subject: str, *, reason: str = "",
              request_id: str | None = None) -> SubjectErasure:
        """Erase a subject (a right-to-erasure request): every prediction and label about it
        leaves the logbook, one audit event records it (by the subject's sha256, never in
        clear), and the versions trained on data that held the subject are listed, for the
        operator to decide on retraining."""
        report = self.logbook.erase(subject)
        trained = [v.ref for v in self.registry.versions_trained_on(subject)]
        with self.db.write() as conn:
            record_event(conn, actor=self.actor, action="subject.erase",
                         target=f"subject:{subject_hash(subject)[:16]}", before=None,
                         after={"subject_sha256": report.subject_sha256,
                                "predictions": report.predictions,
                                "feedback": report.feedback,
                                "files_rewritten": report.files_rewritten,
                                "trained_versions": trained},
                         reason=reason, request_id=request_id)
        return SubjectErasure(report, tuple(trained))

    def close(self) -> None:
        self.logbook.close()
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    actor: str | None = None,
) -> Workspace:
    """Open a workspace.

    Parameters
    ----------
    path:
        A workspace folder to use on its own (SQLite and local files inside it). When omitted,
        settings come from ``keepwell.yaml`` and the ``KEEPWELL_*`` variables.
    config:
        An explicit configuration file.
    actor:
        Who is acting, for the audit log (default: the configured actor or the OS user).

    Examples
    --------
    >>> import tempfile, keepwell as kw
    >>> with kw.connect(tempfile.mkdtemp()) as ws:
    ...     ws.registry.list_models()
    []
    """
    settings = Settings.for_workspace(path) if path is not None else load_settings(config)
    return Workspace(settings, actor=actor)


def register(name: str, model: Any, X: Any, y: Any = None, **kwargs: Any) -> Any:
    """Register a model in the configured workspace (``keepwell.yaml`` / ``KEEPWELL_*``).

    The notebook shortcut for ``kw.connect().register(...)``; takes the same arguments as
    :meth:`keepwell.registry.Registry.register` and returns the new
    :class:`~keepwell.registry.ModelVersion`.
    """
    with connect() as ws:
        return ws.register(name, model, X, y, **kwargs)
