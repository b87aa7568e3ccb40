"""leases (one live executor per run or per nightly) and attempts.client_wait_ms

A lease is a named row that one holder keeps alive with a heartbeat: "run:<id>" while a run is
executed, "nightly:<config>" while a nightly job runs. A holder whose heartbeat is older than the
lease's ttl is gone (kill -9, a lost host), so its lease can be taken at once. The scale-out issue
grows this into one lease per worker beside job claims; the name column leaves room for that.

client_wait_ms is the time a request waited for a connection before it could be sent: outside the
generation clock, recorded beside it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ttl_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("client_wait_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("client_wait_ms")
    op.drop_table("leases")
