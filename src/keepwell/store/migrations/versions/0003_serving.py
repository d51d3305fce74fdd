"""Serving: traffic policies per model, and API tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "traffic_policies",
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("challenger_alias", sa.String(64), nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_traffic_policies"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name="fk_traffic_policies_model_id_models"),
        sa.CheckConstraint("kind IN ('champion', 'ab', 'shadow', 'canary')",
                           name="ck_traffic_policies_kind"),
        sa.CheckConstraint("share >= 0 AND share <= 1", name="ck_traffic_policies_share"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("revoked_at", timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint("role IN ('viewer', 'predictor', 'operator', 'admin')",
                           name="ck_api_tokens_role"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("traffic_policies")
