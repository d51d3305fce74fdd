"""The metadata schema, as SQLAlchemy Core tables.

Changes to these tables are made only together with an Alembic migration in
``keepwell/store/migrations/versions/``; a test checks that the two agree.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "JSONText",
    "UTCDateTime",
    "alias_history",
    "aliases",
    "api_tokens",
    "audit_events",
    "audit_head",
    "metadata",
    "model_versions",
    "models",
    "monitor_alerts",
    "monitor_results",
    "traffic_policies",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


class JSONText(TypeDecorator[Any]):
    """JSON stored as canonical text, so hashes over it are stable on every database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("task", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("target", String(256), nullable=True),
    Column("sensitive_features", JSONText, nullable=False),
    Column("allow_unsafe_formats", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", Integer, nullable=False),
    Column("profile_sha256", String(64), nullable=False),
    Column("subjects_sha256", String(64), nullable=True),
    Column("monitoring_sha256", String(64), nullable=True),
    Column("signature", JSONText, nullable=False),
    Column("params", JSONText, nullable=False),
    Column("metrics", JSONText, nullable=False),
    Column("tags", JSONText, nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("parent_version", Integer, nullable=True),
    Column("libraries", JSONText, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    CheckConstraint("status IN ('ready', 'archived', 'deleted')", name="status"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False, index=True),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("audit_seq", Integer, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("before", JSONText, nullable=True),
    Column("after", JSONText, nullable=True),
    Column("reason", Text, nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the newest event's sequence number and hash. Locking it serialises every audited
# change on PostgreSQL, and it lets `audit verify` notice deleted events at the tail.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)


traffic_policies = Table(
    "traffic_policies",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("challenger_alias", String(64), nullable=False),
    Column("share", Float, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(256), nullable=False),
    CheckConstraint("kind IN ('champion', 'ab', 'shadow', 'canary')", name="kind"),
    CheckConstraint("share >= 0 AND share <= 1", name="share"),
)

# Tokens are stored as the sha256 of their text: they are 256-bit random, so a fast hash is
# as strong as a slow one, and the server can look one up in a single indexed read.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    CheckConstraint("role IN ('viewer', 'predictor', 'operator', 'admin')", name="role"),
)


# One row per (model, version, check, window): re-running a window (late labels arrived)
# replaces its row, so the table is the time series of every check.
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("check_name", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("window_by", String(8), nullable=False),
    Column("n", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("details", JSONText, nullable=False),
    Column("evaluated_at", UTCDateTime, nullable=False),
    UniqueConstraint("model_id", "version", "check_name", "window_start", "window_end",
                     name="uq_monitor_results_window"),
    CheckConstraint("status IN ('ok', 'alert', 'skipped', 'error')", name="status"),
    CheckConstraint("window_by IN ('time', 'count')", name="window_by"),
)

# A check's state changes (ok → alert, alert → ok), and what became of each notification.
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("check_name", String(128), nullable=False),
    Column("previous_status", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("message", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("deliveries", JSONText, nullable=False),
)
