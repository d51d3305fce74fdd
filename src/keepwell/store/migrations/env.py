"""Alembic environment: keepwell passes the connection in, so no alembic.ini is needed."""

from __future__ import annotations

from alembic import context

from keepwell.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
