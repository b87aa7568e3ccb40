"""Playground visitors' daily allowances: one gateway_keys row per visitor per day, holding their spend.

A visitor's row is named "playground:<visitor hash>-<YYYY-MM-DD>". No key of `arena keys create`
can have that name (its names take no ':'), and the row's key_sha256 is the hash of 256 random bits
thrown away at once, so no Bearer key ever matches it: the row only counts spend.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from arena.store.keys import hash_key
from arena.store.tables import GatewayKey, utcnow

VISITOR_PREFIX = "playground"
KEEP_DAYS = (
    7  # visitors' rows older than this go when a new one is made (the attempts keep the name)
)


def visitor_spend(engine: sa.Engine, name: str, allowance_usd: float) -> float:
    """The spend on a visitor's day so far; the row is made (spend 0, budget the allowance) if new."""
    table = GatewayKey.__table__
    query = sa.select(table.c.spent_usd).where(table.c.name == name)
    with engine.connect() as conn:
        spent = conn.execute(query).scalar()
    if spent is not None:
        return float(spent)
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    name=name,
                    key_sha256=hash_key(secrets.token_urlsafe(32)),
                    key_prefix=VISITOR_PREFIX,
                    created_at=utcnow(),
                    budget_usd=allowance_usd,
                    spent_usd=0.0,
                    requests=0,
                )
            )
    except IntegrityError:  # another gateway process made it first: read theirs
        with engine.connect() as conn:
            return float(conn.execute(query).scalar() or 0.0)
    prune_visitors(engine)
    return 0.0


def prune_visitors(engine: sa.Engine, keep_days: float = KEEP_DAYS) -> int:
    """Forget visitors' days older than keep_days (the key cache reads every row of the table)."""
    table = GatewayKey.__table__
    with engine.begin() as conn:
        return conn.execute(
            table.delete().where(
                table.c.name.like(f"{VISITOR_PREFIX}:%"),
                table.c.created_at < utcnow() - timedelta(days=keep_days),
            )
        ).rowcount


def add_visitor_spend(engine: sa.Engine, name: str, cost_usd: float, requests: int = 1) -> None:
    """Add one settled request to a visitor's day, in SQL so several processes add up."""
    table = GatewayKey.__table__
    c = table.c
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(c.name == name)
            .values(
                spent_usd=c.spent_usd + cost_usd,
                requests=c.requests + requests,
                last_used_at=utcnow(),
            )
        )
