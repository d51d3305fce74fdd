"""Monitoring: check results as time series, alerts, and each version's fitted references.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("monitoring_sha256", sa.String(64), nullable=True))
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("check_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("window_start", timestamp, nullable=False),
        sa.Column("window_end", timestamp, nullable=False),
        sa.Column("window_by", sa.String(8), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("evaluated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_results"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name="fk_monitor_results_model_id_models"),
        sa.UniqueConstraint("model_id", "version", "check_name", "window_start", "window_end",
                            name="uq_monitor_results_window"),
        sa.CheckConstraint("status IN ('ok', 'alert', 'skipped', 'error')",
                           name="ck_monitor_results_status"),
        sa.CheckConstraint("window_by IN ('time', 'count')", name="ck_monitor_results_window_by"),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("check_name", sa.String(128), nullable=False),
        sa.Column("previous_status", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("window_end", timestamp, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("raised_at", timestamp, nullable=False),
        sa.Column("deliveries", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_alerts"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name="fk_monitor_alerts_model_id_models"),
    )
    op.create_index("ix_monitor_alerts_model_id", "monitor_alerts", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_monitor_alerts_model_id", "monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_results")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("monitoring_sha256")
