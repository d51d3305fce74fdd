"""The workspace: one object that wires settings, stores, registry and audit log together."""

from __future__ import annotations

import os
from typing import Any

from keepwell.audit import AuditLog
from keepwell.config import Settings, load_settings
from keepwell.registry.registry import Registry
from keepwell.store.artifacts import LocalArtifactStore
from keepwell.store.db import Database

__all__ = ["Workspace", "connect", "register"]


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

    def register(self, name: str, model: Any, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """Shortcut for :meth:`keepwell.registry.Registry.register`."""
        return self.registry.register(name, model, X, y, **kwargs)

    def close(self) -> None:
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
