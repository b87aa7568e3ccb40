"""workers: jobs.claimed_by, provider_slots, provider_paces, budget_holds

Several `arena worker` processes, on any number of hosts, share one run through the database. A
worker claims pending jobs (jobs.claimed_by = its lease's holder, taken with SELECT ... FOR UPDATE
SKIP LOCKED); a provider's max_concurrency is a set of slot rows a worker holds while a request is
in flight; its rate_limit_per_s is one schedule row advanced with UPDATE ... RETURNING; the run's
budget is the sum of the costs saved plus the holds of the jobs in flight.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.create_index("ix_jobs_claimed_by", "jobs", ["claimed_by"])
    op.create_table(
        "provider_slots",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "provider", "slot"),
    )
    op.create_index("ix_provider_slots_holder", "provider_slots", ["holder"])
    op.create_table(
        "provider_paces",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("next_at_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "provider"),
    )
    op.create_table(
        "budget_holds",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expected_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_budget_holds_run_id", "budget_holds", ["run_id"])
    op.create_index("ix_budget_holds_holder", "budget_holds", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_budget_holds_holder", table_name="budget_holds")
    op.drop_index("ix_budget_holds_run_id", table_name="budget_holds")
    op.drop_table("budget_holds")
    op.drop_table("provider_paces")
    op.drop_index("ix_provider_slots_holder", table_name="provider_slots")
    op.drop_table("provider_slots")
    op.drop_index("ix_jobs_claimed_by", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claimed_by")
