"""The metadata database: SQLite (WAL) or PostgreSQL behind one small class.

Every change to keepwell's state runs inside :meth:`Database.write`, which holds the database's
single write lock for the whole transaction: ``BEGIN IMMEDIATE`` on SQLite, a row lock on
``audit_head`` on PostgreSQL. Changes are therefore applied, and audited, in one serial order,
whatever the number of processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from keepwell._files import make_private_dir, touch_private
from keepwell.errors import ConfigurationError, SchemaError
from keepwell.store.tables import audit_head

__all__ = ["Database", "SchemaStatus"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_SQLITE_BUSY_TIMEOUT_MS = 60_000


class SchemaStatus:
    """Where a database's schema stands against this keepwell's migrations."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head

    @property
    def is_empty(self) -> bool:
        return self.current is None

    @property
    def is_current(self) -> bool:
        return self.current == self.head


class Database:
    """A connection pool to the metadata database.

    Parameters
    ----------
    url:
        A SQLAlchemy URL: ``sqlite:///path/keepwell.db`` or
        ``postgresql+psycopg://user@host:5432/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigurationError(
                "database_url is not a valid SQLAlchemy URL; use sqlite:///path/keepwell.db "
                "or postgresql+psycopg://user@host:5432/dbname."
            ) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"database_url uses {self.dialect!r}; keepwell supports sqlite and postgresql."
            )
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            self.engine: Engine = self._create_engine(parsed)
        except (NoSuchModuleError, ModuleNotFoundError):
            raise ConfigurationError(
                "the PostgreSQL driver is missing; install it with "
                "pip install 'keepwell[postgresql]'."
            ) from None

    def _create_engine(self, url: Any) -> Engine:
        if self.dialect == "sqlite":
            database = url.database
            if database and database != ":memory:":
                make_private_dir(Path(database).parent)
                touch_private(database)
            engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction holding the global write lock; commits on success, else rolls back."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1)
                                 .with_for_update())
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on SQLite's WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- schema ---------------------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = conn
        return config

    def schema_status(self) -> SchemaStatus:
        head = ScriptDirectory.from_config(self._alembic_config(None)).get_current_head()  # type: ignore[arg-type]
        assert head is not None
        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise SchemaError(
                f"cannot reach the metadata database ({_brief(exc)}); check database_url and "
                "that the server is running."
            ) from None
        return SchemaStatus(current, head)

    def upgrade(self) -> SchemaStatus:
        """Apply every pending migration (``keepwell db upgrade``)."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    # Two processes upgrading at once take turns.
                    conn.execute(text("SELECT pg_advisory_xact_lock(7478322)"))
                command.upgrade(self._alembic_config(conn), "head")
        return self.schema_status()

    def ensure_schema(self) -> None:
        """Create the schema in an empty database; refuse to run on an outdated one."""
        status = self.schema_status()
        if status.is_empty:
            status = self.upgrade()
        if not status.is_current:
            known = ScriptDirectory.from_config(self._alembic_config(None))  # type: ignore[arg-type]
            try:
                known.get_revision(status.current or "")
            except CommandError:
                raise SchemaError(
                    f"the database schema ({status.current}) is newer than this keepwell "
                    "understands; upgrade keepwell."
                ) from None
            raise SchemaError(
                f"the database schema is at {status.current}, this keepwell needs "
                f"{status.head}; run `keepwell db upgrade` (back up the database first)."
            )

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """WAL, full sync, foreign keys, and transactions whose BEGIN keepwell controls."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _brief(exc: BaseException) -> str:
    """The first line of a driver error, without the SQL or parameters."""
    orig = getattr(exc, "orig", exc)
    return str(orig).strip().splitlines()[0][:200] if str(orig).strip() else type(orig).__name__
