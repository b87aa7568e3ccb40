"""Store writes and reads only tests need: votes inserted as rows, a run's jobs as a DataFrame,
the count of done jobs, a lease row as another holder left it, and attempt rows of either source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from arena import store
from arena.errors import StoreError
from arena.store.tables import Attempt, Job, Lease, Vote


def add_votes(engine: sa.Engine, votes: list[dict]) -> int:
    """Insert vote rows (dicts with Vote's columns) in one transaction; returns how many."""
    if not votes:
        return 0
    try:
        with engine.begin() as conn:
            conn.execute(Vote.__table__.insert(), votes)
    except IntegrityError as exc:
        raise StoreError(f"vote rejected: {exc.orig}") from None
    return len(votes)


def read_jobs(engine: sa.Engine, run_id: str | None = None) -> pd.DataFrame:
    """Every job (or one run's) with all its columns."""
    query = select(Job)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def done_jobs(db_url: str) -> int:
    """How many jobs are done, from a connection of its own (0 before the database exists)."""
    engine = store.open_engine(db_url, create=False)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM jobs WHERE status = 'done'")).scalar()
    except sa.exc.SQLAlchemyError:
        return 0  # not created yet
    finally:
        engine.dispose()


def put_lease(
    engine: sa.Engine,
    name: str,
    *,
    host: str,
    pid: int,
    heartbeat_age_s: float,
    ttl_s: float = 30.0,
    token: str = "feedfacefeedface",
) -> None:
    """A lease row as another holder left it (replacing any), its heartbeat `heartbeat_age_s` old."""
    at = datetime.now(UTC) - timedelta(seconds=heartbeat_age_s)
    with engine.begin() as conn:
        conn.execute(Lease.__table__.delete().where(Lease.__table__.c.name == name))
        conn.execute(
            Lease.__table__.insert().values(
                name=name,
                holder=f"{host}:{pid}:{token}",
                host=host,
                pid=pid,
                acquired_at=at,
                heartbeat_at=at,
                ttl_s=ttl_s,
            )
        )


def attempt_row(**fields) -> dict:
    """One attempt row with every column a test does not care about filled in: a successful
    benchmark attempt of `model` at `provider` started a minute ago, unless `fields` say otherwise."""
    row = {
        "run_id": "run-test",
        "job_id": None,
        "attempt": 1,
        "warmup": False,
        "challenge": "t2i",
        "task": "text-to-image",
        "category": "",
        "model": "card",
        "provider": "local",
        "started_at": datetime.now(UTC) - timedelta(minutes=1),
        "ok": True,
        "failure_class": None,
        "generation_ms": 100.0,
        "ttfb_ms": 50.0,
        "cost_usd": 0.0,
        "source": "benchmark",
        "gateway_key": None,
        "gateway_request_id": None,
    }
    row.update(fields)
    return row


def traffic_row(request_id: str, key: str = "app", **fields) -> dict:
    """An attempt row as the gateway writes one: source traffic, run "traffic", no job, no challenge."""
    gateway = {
        "run_id": "traffic",
        "job_id": None,
        "challenge": "",
        "category": "",
        "source": "traffic",
        "gateway_key": key,
        "gateway_request_id": request_id,
    }
    return attempt_row(**{**gateway, **fields})


def add_attempts(engine: sa.Engine, rows: list[dict]) -> int:
    """Insert attempt rows (attempt_row / traffic_row dicts) in one transaction; returns how many."""
    if rows:
        with engine.begin() as conn:
            conn.execute(Attempt.__table__.insert(), rows)
    return len(rows)
