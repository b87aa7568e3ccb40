"""The engine from a database URL: drivers, SQLite pragmas, opening (and upgrading) a database."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from arena.errors import StoreError
from arena.store import migrations

log = logging.getLogger("arena.store")


def engine_url(url: str) -> str:
    """Pick our drivers: psycopg 3 for PostgreSQL, the stdlib for SQLite."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def apply_sqlite_pragmas(dbapi_conn) -> None:
    """WAL (readers never block the writer), fsync at checkpoints only, and waiting out a busy lock."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str, create: bool = True) -> sa.Engine:
    """An engine on a database at the code's schema revision (created, or upgraded and said so once).

    `create=False` leaves the schema alone (no upgrade, no check): for a reader of a database that
    another call has opened already. SQLite gets WAL and a busy timeout for concurrent readers.
    """
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            apply_sqlite_pragmas(dbapi_conn)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if create:
        try:
            before, after = migrations.upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        if before.has_tables and before.revision != after.revision:
            log.warning(
                "arena: upgraded the database at %s from %s to %s",
                engine.url.render_as_string(hide_password=True),
                before.label,
                after.label,
            )
    return engine
