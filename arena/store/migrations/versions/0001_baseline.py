"""arena's tables as create_all made them before migrations

The schema of commit 04ab0bb, written out (later model changes go in later revisions, never here).
On an empty database it creates everything. On a database create_all made before migrations (no
alembic_version) it creates only what is missing, so rows are never touched: tables added after
that database was made, and the two voting indexes that create_all did not add to older tables
(battles by (session, issued_at), votes by (voter, created_at)); and it drops the (session) index
they replaced, which the voting server's start-up used to drop on every start.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(length: int) -> sa.String:
    return sa.String(length=length)


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _index(name: str, table: str, *columns: str) -> None:
    op.create_index(name, table, list(columns), unique=False, if_not_exists=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", _text(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("finished_at", _time(), nullable=True),
        sa.Column("status", _text(32), nullable=False),
        sa.Column("config_source", _text(500), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("max_cost_usd", sa.Float(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("jobs_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", _text(64), nullable=False),
        sa.Column("challenge", _text(64), nullable=False),
        sa.Column("task", _text(16), nullable=False),
        sa.Column("category", _text(64), nullable=False),
        sa.Column("model", _text(200), nullable=False),
        sa.Column("provider", _text(100), nullable=False),
        sa.Column("model_id", _text(200), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("outcome", _text(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expected_cost_usd", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("image_sha256", _text(64), nullable=True),
        sa.Column("finished_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "challenge", "model", "provider", "sample", name="uq_job"),
        if_not_exists=True,
    )
    _index("ix_jobs_model", "jobs", "model")
    _index("ix_jobs_run_id", "jobs", "run_id")
    _index("ix_jobs_status", "jobs", "status")

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", _text(64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("warmup", sa.Boolean(), nullable=False),
        sa.Column("challenge", _text(64), nullable=False),
        sa.Column("task", _text(16), nullable=False),
        sa.Column("category", _text(64), nullable=False),
        sa.Column("model", _text(200), nullable=False),
        sa.Column("provider", _text(100), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("failure_class", _text(32), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("generation_ms", sa.Float(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("download_ms", sa.Float(), nullable=True),
        sa.Column("queue_ms", sa.Float(), nullable=True),
        sa.Column("processing_ms", sa.Float(), nullable=True),
        sa.Column("first_partial_ms", sa.Float(), nullable=True),
        sa.Column("limiter_wait_ms", sa.Float(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("image_sha256", _text(64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", _text(8), nullable=True),
        sa.Column("served_by", _text(200), nullable=True),
        sa.Column("request_id", _text(200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "attempt", name="uq_attempt"),
        if_not_exists=True,
    )
    _index("ix_attempts_job_id", "attempts", "job_id")
    _index("ix_attempts_model", "attempts", "model")
    _index("ix_attempts_provider", "attempts", "provider")
    _index("ix_attempts_run_id", "attempts", "run_id")
    _index("ix_attempts_started_at", "attempts", "started_at")

    op.create_table(
        "images",
        sa.Column("sha256", _text(64), nullable=False),
        sa.Column("path", _text(500), nullable=False),
        sa.Column("format", _text(8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
        if_not_exists=True,
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battle_id", _text(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("challenge", _text(64), nullable=False),
        sa.Column("task", _text(16), nullable=False),
        sa.Column("category", _text(64), nullable=False),
        sa.Column("model_left", _text(200), nullable=False),
        sa.Column("model_right", _text(200), nullable=False),
        sa.Column("provider_left", _text(100), nullable=False),
        sa.Column("provider_right", _text(100), nullable=False),
        sa.Column("image_left", _text(64), nullable=True),
        sa.Column("image_right", _text(64), nullable=True),
        sa.Column("outcome", _text(16), nullable=False),
        sa.Column("voter", _text(64), nullable=False),
        sa.Column("ip_hash", _text(64), nullable=True),
        sa.Column("dwell_ms", sa.Float(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flag_reason", _text(200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("battle_id"),  # one vote per battle
        if_not_exists=True,
    )
    _index("ix_votes_challenge", "votes", "challenge")
    _index("ix_votes_created_at", "votes", "created_at")
    _index("ix_votes_voter_created", "votes", "voter", "created_at")

    op.create_table(
        "derivatives",
        sa.Column("original_sha256", _text(64), nullable=False),
        sa.Column("box", _text(16), nullable=False),
        sa.Column("sha256", _text(64), nullable=False),
        sa.Column("path", _text(500), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("original_sha256", "box"),
        if_not_exists=True,
    )
    op.create_table(
        "battles",
        sa.Column("id", _text(64), nullable=False),
        sa.Column("session", _text(64), nullable=False),
        sa.Column("challenge", _text(64), nullable=False),
        sa.Column("task", _text(16), nullable=False),
        sa.Column("category", _text(64), nullable=False),
        sa.Column("model_left", _text(200), nullable=False),
        sa.Column("provider_left", _text(100), nullable=False),
        sa.Column("image_left", _text(64), nullable=False),
        sa.Column("view_left", _text(64), nullable=False),
        sa.Column("model_right", _text(200), nullable=False),
        sa.Column("provider_right", _text(100), nullable=False),
        sa.Column("image_right", _text(64), nullable=False),
        sa.Column("view_right", _text(64), nullable=False),
        sa.Column("view_source", _text(64), nullable=True),
        sa.Column("issued_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("weights_json", sa.Text(), nullable=False),
        sa.Column("ip_hash", _text(64), nullable=True),
        sa.Column("user_agent", _text(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    _index("ix_battles_session_issued", "battles", "session", "issued_at")
    op.drop_index("ix_battles_session", table_name="battles", if_exists=True)

    op.create_table(
        "battle_sides",
        sa.Column("challenge", _text(64), nullable=False),
        sa.Column("model_a", _text(200), nullable=False),
        sa.Column("model_b", _text(200), nullable=False),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.Column("a_left", sa.Integer(), nullable=False),
        sa.Column("last_a_left", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("challenge", "model_a", "model_b"),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in (
        "battle_sides",
        "battles",
        "derivatives",
        "votes",
        "images",
        "attempts",
        "jobs",
        "runs",
    ):
        op.drop_table(table)
