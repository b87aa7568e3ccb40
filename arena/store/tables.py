"""SQLModel tables: runs, jobs, attempts, leases, the limits workers share, gateway keys, images,
votes, battles, judge calls and output checks."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kwargs) -> Field:
    return Field(sa_type=sa.DateTime(timezone=True), **kwargs)


class Run(SQLModel, table=True):
    """One benchmark run: its plan is stored before any request is sent."""

    __tablename__ = "runs"
    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    finished_at: datetime | None = _ts(default=None)
    status: str = Field(
        default="planned", max_length=32
    )  # planned, running, completed, interrupted, budget_stopped, failed (the store failed)
    config_source: str = Field(default="", max_length=500)
    settings_json: str = Field(default="{}", sa_type=sa.Text)  # providers and models, never keys
    max_cost_usd: float | None = None
    samples: int = 1
    jobs_total: int = 0


class Job(SQLModel, table=True):
    """challenge x model@provider x sample within a run; done at most once."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "challenge", "model", "provider", "sample", name="uq_job"),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="runs.id", max_length=64)
    challenge: str = Field(max_length=64)
    task: str = Field(max_length=16)
    category: str = Field(default="", max_length=64)
    model: str = Field(index=True, max_length=200)
    provider: str = Field(max_length=100)
    model_id: str = Field(max_length=200)
    sample: int = 0
    status: str = Field(default="pending", max_length=16, index=True)  # pending, done
    outcome: str | None = Field(default=None, max_length=32)  # success or a failure class
    attempts: int = 0
    expected_cost_usd: float | None = None
    cost_usd: float | None = None
    image_sha256: str | None = Field(default=None, max_length=64)
    finished_at: datetime | None = _ts(default=None)
    # The worker lease's holder that claimed it (`arena worker`); None while in the pool.
    claimed_by: str | None = Field(default=None, max_length=200, index=True)


class Attempt(SQLModel, table=True):
    """One HTTP request made for a job (or a warm-up), with its timings and outcome."""

    __tablename__ = "attempts"
    __table_args__ = (sa.UniqueConstraint("job_id", "attempt", name="uq_attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    job_id: int | None = Field(default=None, index=True)
    attempt: int = 1
    warmup: bool = False
    challenge: str = Field(max_length=64)
    task: str = Field(max_length=16)
    category: str = Field(default="", max_length=64)
    model: str = Field(index=True, max_length=200)
    provider: str = Field(index=True, max_length=100)
    started_at: datetime = _ts(default_factory=utcnow, index=True)
    ok: bool = False
    failure_class: str | None = Field(default=None, max_length=32)
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=sa.Text)
    generation_ms: float | None = None
    ttfb_ms: float | None = None
    download_ms: float | None = None
    queue_ms: float | None = None
    processing_ms: float | None = None
    first_partial_ms: float | None = None
    limiter_wait_ms: float | None = None
    client_wait_ms: float | None = None  # waiting for a connection, outside the generation clock
    retry_after_s: float | None = None
    cost_usd: float | None = None
    image_sha256: str | None = Field(default=None, max_length=64)
    width: int | None = None
    height: int | None = None
    format: str | None = Field(default=None, max_length=8)
    served_by: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, max_length=200)
    # "benchmark" (the harness) or "traffic" (the gateway); traffic rows name the gateway key (its
    # name, never the key) and the gateway request whose fallbacks they were
    source: str = Field(
        default="benchmark", max_length=16, sa_column_kwargs={"server_default": "benchmark"}
    )
    gateway_key: str | None = Field(default=None, max_length=64)
    gateway_request_id: str | None = Field(default=None, max_length=64)
    prompt: str | None = Field(default=None, sa_type=sa.Text)  # traffic with keep_outputs only


class Lease(SQLModel, table=True):
    """A named lease kept alive by one holder's heartbeat ("run:<id>", "nightly:<config>")."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)  # host:pid:token of the live executor
    host: str = Field(max_length=200)
    pid: int
    acquired_at: datetime = _ts(default_factory=utcnow)
    heartbeat_at: datetime = _ts(default_factory=utcnow)
    ttl_s: float  # a heartbeat older than this means the holder is gone


class ProviderSlot(SQLModel, table=True):
    """One of a provider's max_concurrency slots in a run, held by the worker sending through it."""

    __tablename__ = "provider_slots"
    run_id: str = Field(primary_key=True, max_length=64)
    provider: str = Field(primary_key=True, max_length=100)
    slot: int = Field(primary_key=True)
    holder: str | None = Field(default=None, max_length=200, index=True)


class ProviderPace(SQLModel, table=True):
    """A provider's shared send schedule in a run: the earliest moment (epoch seconds by the
    database's clock) the next request of any worker may start."""

    __tablename__ = "provider_paces"
    run_id: str = Field(primary_key=True, max_length=64)
    provider: str = Field(primary_key=True, max_length=100)
    next_at_s: float = 0.0


class BudgetHold(SQLModel, table=True):
    """A job's expected cost, held against its run's budget from its first request until its final
    attempt is saved (in the same transaction), so workers together never pass --max-cost."""

    __tablename__ = "budget_holds"
    job_id: int = Field(primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    holder: str = Field(max_length=200, index=True)
    expected_usd: float = 0.0


class GatewayKey(SQLModel, table=True):
    """A gateway API key: its name and the sha256 of the key (the key is shown once, never stored)."""

    __tablename__ = "gateway_keys"
    name: str = Field(primary_key=True, max_length=64)
    key_sha256: str = Field(max_length=64, unique=True)
    key_prefix: str = Field(max_length=16)  # the key's first characters, to tell keys apart
    created_at: datetime = _ts(default_factory=utcnow)
    revoked_at: datetime | None = _ts(default=None)
    budget_usd: float | None = None  # None: no budget
    rate_per_min: float | None = None  # None: no rate limit
    spent_usd: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    requests: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_used_at: datetime | None = _ts(default=None)


class StoredImage(SQLModel, table=True):
    """An image file stored once under its sha256."""

    __tablename__ = "images"
    sha256: str = Field(primary_key=True, max_length=64)
    path: str = Field(max_length=500)  # relative to the data dir
    format: str = Field(max_length=8)
    width: int
    height: int
    size_bytes: int
    created_at: datetime = _ts(default_factory=utcnow)


class Vote(SQLModel, table=True):
    """One blind vote on a battle: append-only; flagged votes are kept but left out of ratings."""

    __tablename__ = "votes"
    id: int | None = Field(default=None, primary_key=True)
    battle_id: str = Field(
        max_length=64, unique=True
    )  # one vote per battle, enforced by the database
    created_at: datetime = _ts(default_factory=utcnow, index=True)
    challenge: str = Field(max_length=64, index=True)
    task: str = Field(max_length=16)
    category: str = Field(default="", max_length=64)
    model_left: str = Field(max_length=200)
    model_right: str = Field(max_length=200)
    provider_left: str = Field(default="", max_length=100)
    provider_right: str = Field(default="", max_length=100)
    image_left: str | None = Field(default=None, max_length=64)  # sha256 of the original output
    image_right: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)  # left, right, tie, both_bad
    voter: str = Field(default="", max_length=64)  # a session id hash, never an IP
    ip_hash: str | None = Field(default=None, max_length=64)  # salted hash; never released
    dwell_ms: float | None = None
    flagged: bool = False
    flag_reason: str | None = Field(default=None, max_length=200)
    # "human" (the voting page) or "judge:NAME" (arena judge); apart in every board unless asked
    voter_kind: str = Field(
        default="human", max_length=64, sa_column_kwargs={"server_default": "human"}
    )
    reason: str | None = Field(default=None, sa_type=sa.Text)  # a judge's short reason


class JudgeCall(SQLModel, table=True):
    """One request to a judge: one order of one comparison, with its timings, cost and verdict.

    A comparison is two outputs of one challenge, `a` and `b` in sha256 order; each is asked twice
    ("ab": a shown first, "ba": b first). The vote it becomes has the comparison's id as battle_id.
    """

    __tablename__ = "judge_calls"
    id: int | None = Field(default=None, primary_key=True)
    judge: str = Field(max_length=64, index=True)
    model_id: str = Field(default="", max_length=200)  # the judge's model
    comparison: str = Field(max_length=64, index=True)
    order: str = Field(max_length=2)  # "ab" or "ba"
    attempt: int = 1
    started_at: datetime = _ts(default_factory=utcnow)
    challenge: str = Field(max_length=64)
    task: str = Field(max_length=16)
    category: str = Field(default="", max_length=64)
    model_a: str = Field(max_length=200)
    provider_a: str = Field(max_length=100)
    image_a: str = Field(max_length=64)
    model_b: str = Field(max_length=200)
    provider_b: str = Field(max_length=100)
    image_b: str = Field(max_length=64)
    ok: bool = False
    failure_class: str | None = Field(default=None, max_length=32)
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=sa.Text)
    duration_ms: float | None = None
    ttfb_ms: float | None = None
    limiter_wait_ms: float | None = None
    cost_usd: float | None = None
    verdict: str | None = Field(default=None, max_length=16)  # a, b, tie, both_bad
    reason: str | None = Field(default=None, sa_type=sa.Text)


class OutputCheck(SQLModel, table=True):
    """One check that needs no model, on one output: flagged or not, the measured value, the threshold."""

    __tablename__ = "output_checks"
    image_sha256: str = Field(primary_key=True, max_length=64)
    check: str = Field(primary_key=True, max_length=16)  # unchanged, aspect, faces, blank
    challenge: str = Field(default="", max_length=64)
    flagged: bool = False
    value: float | None = None
    threshold: float | None = None
    detail: str = Field(default="", max_length=200)
    checked_at: datetime = _ts(default_factory=utcnow)


# --- blind voting (arena.web): derivatives, battles, side counters ------------------------------


class Derivative(SQLModel, table=True):
    """The blind copy of an image shown in battles: made once per (original, box), stored by its own sha256."""

    __tablename__ = "derivatives"
    original_sha256: str = Field(primary_key=True, max_length=64)
    box: str = Field(primary_key=True, max_length=16)  # "768x432": the box it was fitted into
    sha256: str = Field(max_length=64)  # of the derivative's bytes
    path: str = Field(max_length=500)  # relative to the data dir
    width: int
    height: int
    size_bytes: int
    created_at: datetime = _ts(default_factory=utcnow)


class Battle(SQLModel, table=True):
    """One battle as issued to a voter: append-only; its vote (at most one) lives in votes."""

    __tablename__ = "battles"
    # a session's battles in issue order: its history, and the guard that no battle is newer than its latest known
    __table_args__ = (sa.Index("ix_battles_session_issued", "session", "issued_at"),)
    id: str = Field(primary_key=True, max_length=64)  # 128 random bits, hex
    session: str = Field(max_length=64)  # keyed hash of the session id, never the cookie itself
    challenge: str = Field(max_length=64)
    task: str = Field(max_length=16)
    category: str = Field(default="", max_length=64)
    model_left: str = Field(max_length=200)  # left is the side displayed as A
    provider_left: str = Field(max_length=100)
    image_left: str = Field(max_length=64)  # sha256 of the original output
    view_left: str = Field(max_length=64)  # sha256 of the derivative served
    model_right: str = Field(max_length=200)
    provider_right: str = Field(max_length=100)
    image_right: str = Field(max_length=64)
    view_right: str = Field(max_length=64)
    view_source: str | None = Field(
        default=None, max_length=64
    )  # an edit's source image, as a derivative
    issued_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    weights_json: str = Field(
        default="{}", sa_type=sa.Text
    )  # the sampling weights that chose this battle
    ip_hash: str | None = Field(default=None, max_length=64)
    user_agent: str = Field(default="", max_length=200)


class BattleSides(SQLModel, table=True):
    """How often each order of a (challenge, pair) was shown, so sides stay counterbalanced."""

    __tablename__ = "battle_sides"
    challenge: str = Field(primary_key=True, max_length=64)
    model_a: str = Field(
        primary_key=True, max_length=200
    )  # the pair in name order: model_a < model_b
    model_b: str = Field(primary_key=True, max_length=200)
    issued: int = 0
    a_left: int = 0  # battles that showed model_a on the left
    last_a_left: int = 0  # the side chosen for the latest battle


# The gateway's routing reads the last 30 days of attempts of one source.
ATTEMPTS_BY_SOURCE = sa.Index(
    "ix_attempts_source_started",
    Attempt.__table__.c.source,
    Attempt.__table__.c.started_at,
)

# Boards read one kind of voter: humans, or one judge.
VOTES_BY_KIND = sa.Index("ix_votes_voter_kind", Vote.__table__.c.voter_kind)

# The boards' pair counts (store.read_pair_counts) and the votes per challenge are read from this
# index alone, in its order: no pass over the table's rows.
VOTES_BY_PAIR = sa.Index(
    "ix_votes_pair_counts",
    *(
        Vote.__table__.c[name]
        for name in (
            "voter_kind",
            "task",
            "model_left",
            "model_right",
            "outcome",
            "flagged",
            "challenge",
        )
    ),
)

# A voter's recent votes are read on every vote (burst and repeat-pair flags).
VOTES_BY_VOTER = sa.Index(
    "ix_votes_voter_created", Vote.__table__.c.voter, Vote.__table__.c.created_at
)
