"""Store writes and reads only tests need: votes inserted as rows, a run's jobs as a DataFrame."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from arena.errors import StoreError
from arena.store.tables import Job, Vote


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
