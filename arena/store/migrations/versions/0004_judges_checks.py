"""judges and checks: votes.voter_kind and votes.reason, judge_calls, output_checks

Votes now carry their voter's kind: "human" (the voting page; every row before this revision) or
"judge:NAME" (a vision-language model asked by `arena judge`), kept apart in every board unless
asked for, and a judge's short reason. judge_calls holds every request made to a judge (each
comparison asked twice, sides swapped) with its time, cost, failure class and verdict.
output_checks holds the checks that need no model (unchanged, aspect, faces, blank), one row per
output and check.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("votes") as batch:
        batch.add_column(
            sa.Column("voter_kind", sa.String(length=64), nullable=False, server_default="human")
        )
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_index("ix_votes_voter_kind", "votes", ["voter_kind"])
    op.create_table(
        "judge_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("judge", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("comparison", sa.String(length=64), nullable=False),
        sa.Column("order", sa.String(length=2), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("model_a", sa.String(length=200), nullable=False),
        sa.Column("provider_a", sa.String(length=100), nullable=False),
        sa.Column("image_a", sa.String(length=64), nullable=False),
        sa.Column("model_b", sa.String(length=200), nullable=False),
        sa.Column("provider_b", sa.String(length=100), nullable=False),
        sa.Column("image_b", sa.String(length=64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("failure_class", sa.String(length=32), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("limiter_wait_ms", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_judge_calls_judge", "judge_calls", ["judge"])
    op.create_index("ix_judge_calls_comparison", "judge_calls", ["comparison"])
    op.create_table(
        "output_checks",
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("check", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_sha256", "check"),
    )


def downgrade() -> None:
    op.drop_table("output_checks")
    op.drop_index("ix_judge_calls_comparison", table_name="judge_calls")
    op.drop_index("ix_judge_calls_judge", table_name="judge_calls")
    op.drop_table("judge_calls")
    op.drop_index("ix_votes_voter_kind", table_name="votes")
    with op.batch_alter_table("votes") as batch:
        batch.drop_column("reason")
        batch.drop_column("voter_kind")
