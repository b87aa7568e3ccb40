"""the gateway: attempts.source, the gateway key and request of a traffic attempt, gateway_keys

Attempts now carry their source: "benchmark" (the harness; every row before this revision) or
"traffic" (the gateway's upstream attempts, one row per provider tried for a request). A traffic
attempt names the gateway key it was made for (the key's name, never the key) and the gateway's
own request id, so the attempts of one request (the fallbacks) read together, and its prompt only
when `[gateway] keep_outputs` is on (a benchmark attempt's prompt is its challenge's).

gateway_keys holds each key's name, the sha256 of the key (the key itself is shown once, at
creation, and never stored), its budget and rate, and what it has spent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="benchmark")
        )
        batch.add_column(sa.Column("gateway_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("gateway_request_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("prompt", sa.Text(), nullable=True))
    op.create_index("ix_attempts_source_started", "attempts", ["source", "started_at"])
    op.create_table(
        "gateway_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("rate_per_min", sa.Float(), nullable=True),
        sa.Column("spent_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("key_sha256", name="uq_gateway_key_sha256"),
    )


def downgrade() -> None:
    op.drop_table("gateway_keys")
    op.drop_index("ix_attempts_source_started", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("prompt")
        batch.drop_column("gateway_request_id")
        batch.drop_column("gateway_key")
        batch.drop_column("source")
