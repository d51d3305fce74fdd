"""Has the metadata database changed? A check cheap enough to make before every batch.

The server routes each batch by the model's aliases and traffic policy as they are *now*
(see :mod:`keepwell.serve.runtime`). Reading them costs a few queries; asking whether anything
changed costs far less, so the runtime reads them again only when :meth:`ChangeToken.current`
differs from the token it read them under:

- SQLite: ``PRAGMA data_version`` on a connection kept for this alone. Its value changes when
  any other connection, in this process or another, commits a change (the SQLite
  documentation of the pragma); this connection never writes.
- PostgreSQL: the sequence number of the audit chain's head. Every change that decides what
  is served (an alias move, a traffic policy, archiving a version) records an audit event in
  its own transaction, and so moves the head.

Read the token *before* the state it guards: a change committed between the two makes the
state newer than the token, never older, and only costs one more read on the next batch.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import select

from keepwell.store.db import Database
from keepwell.store.tables import audit_head

__all__ = ["ChangeToken"]


class ChangeToken:
    """Tokens that are equal only if the database has not changed in between.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from keepwell.store.db import Database
    >>> db = Database(f"sqlite:///{tempfile.mkdtemp()}/k.db")
    >>> db.ensure_schema()
    >>> changes = ChangeToken(db)
    >>> first = changes.current()
    >>> first == changes.current()
    True
    >>> from keepwell.audit import record_event
    >>> with db.write() as conn:
    ...     _ = record_event(conn, actor="me", action="test", target="t", before=None,
    ...                      after=None)
    >>> first == changes.current()
    False
    >>> changes.close(); db.dispose()
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._conn: Any = None  # the DBAPI connection that watches (SQLite)
        self._generation = 0  # a new connection starts its own data_version count

    def current(self) -> object:
        """The token for the database as it is now. If the check fails, a token equal to
        no other (so the caller reads the state again, and meets the error there)."""
        if self.db.dialect != "sqlite":
            try:
                with self.db.read() as conn:
                    return ("seq", conn.execute(
                        select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar())
            except Exception:  # noqa: BLE001  (reported by the read that follows)
                return object()
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.db.engine.raw_connection()
                    self._generation += 1
                cursor = self._conn.cursor()
                try:
                    cursor.execute("PRAGMA data_version")
                    (version,) = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception:  # noqa: BLE001  (reported by the read that follows)
                self._discard()
                return object()
            return (self._generation, version)

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is being thrown away
                conn.invalidate()

    def close(self) -> None:
        """Give the watching connection back."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
