"""The engine from a database URL: drivers, SQLite pragmas, opening (and upgrading) a database."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from arena.errors import StoreError
from arena.store import migrations
from arena.store.messages import one_line

log = logging.getLogger("arena.store")
SQLITE_BUSY_TIMEOUT_S = 30.0  # how long a SQLite writer waits out another's lock before failing


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL that does not parse: show no more than its scheme and host part
        return url.split("://", 1)[0] + "://" + url.rsplit("@", 1)[-1].split("://")[-1]


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
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def open_engine(url: str, create: bool = True) -> sa.Engine:
    """An engine on a database at the code's schema revision (created, or upgraded and said so once).

    `create=False` leaves the schema alone (no upgrade, no check): for a reader of a database that
    another call has opened already. SQLite gets WAL and a busy timeout for concurrent readers.
    """
    url = engine_url(url)
    try:
        engine = _create_engine(url)
    except (ImportError, ValueError, sa.exc.ArgumentError) as exc:  # driver, port, URL form
        raise StoreError(f"database URL {_safe(url)}: {one_line(exc)}") from None
    except OSError as exc:
        raise StoreError(f"database URL {_safe(url)}: {exc.strerror}: {exc.filename}") from None
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


def _create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            apply_sqlite_pragmas(dbapi_conn)

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
