"""The metadata database: migrations, schema checks, SQLite settings, PostgreSQL parity."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from keepwell.errors import ConfigurationError, SchemaError
from keepwell.store.db import Database
from keepwell.store.tables import metadata


def test_an_empty_database_gets_the_whole_schema(database_url: str) -> None:
    db = Database(database_url)
    assert db.schema_status().is_empty
    db.ensure_schema()
    status = db.schema_status()
    assert status.is_current
    assert status.current == status.head
    db.dispose()


def test_migrations_match_the_table_definitions(database_url: str) -> None:
    """A change to tables.py without a migration (or the reverse) fails here."""
    db = Database(database_url)
    db.upgrade()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    first = db.upgrade()
    second = db.upgrade()
    assert first.current == second.current == first.head
    db.dispose()


def test_an_outdated_schema_is_refused_until_upgraded(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(SchemaError, match="newer than this keepwell"):
        db.ensure_schema()
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'k.db'}")
    db.ensure_schema()
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()
    assert stat.S_IMODE((tmp_path / "sub" / "k.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o700


def test_a_failed_write_transaction_leaves_nothing(database_url: str) -> None:
    db = Database(database_url)
    db.ensure_schema()
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute(text("UPDATE audit_head SET seq = 99 WHERE id = 1"))
        raise RuntimeError("crash in the middle")
    with db.read() as conn:
        assert conn.execute(text("SELECT seq FROM audit_head")).scalar() == 0
    db.dispose()


@pytest.mark.parametrize("url", ["mysql://localhost/x", "not a url", "oracle://u@h/db"])
def test_unsupported_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="database_url"):
        Database(url)


def test_unreachable_server_names_the_setting() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(SchemaError, match="database_url"):
        db.schema_status()
