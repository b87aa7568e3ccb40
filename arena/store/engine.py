"""The engine from a database URL: drivers, SQLite pragmas, opening (and upgrading) a database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from arena.errors import StoreError


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
    """An engine with the tables created; SQLite gets WAL and a busy timeout for concurrent readers."""
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
            SQLModel.metadata.create_all(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the database: {exc.orig}") from None
    return engine
