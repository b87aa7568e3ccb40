"""Schema migrations: Alembic revisions (versions/) run on the store's own connection, under a lock.

    upgrade(engine)        the database to the newest revision; its state before and after
    schema_state(engine)   the database's revision beside the code's: up to date, behind or newer
    revisions()            every revision, oldest first, with its message

A database with arena's tables but no `alembic_version` (made by `create_all` before migrations)
is upgraded like an empty one: the first revision creates only what it lacks (see its docstring).
`python -m arena.store.migrations` is Alembic's own command line on these scripts, for developers.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from arena.errors import StoreError
from arena.store.messages import one_line

SCRIPTS_DIR = Path(__file__).resolve().parent
# the tables create_all made before migrations: one of them without alembic_version is such a database
PRE_MIGRATION_TABLES = frozenset(
    {"runs", "jobs", "attempts", "images", "votes", "derivatives", "battles", "battle_sides"}
)
# pg_advisory_xact_lock's first key (the second is the schema's hash): "arena schema upgrade"
_PG_LOCK_CLASS = 0x61726E61


@dataclass(frozen=True)
class Revision:
    """One migration script: its id, what it does, and the one it follows."""

    id: str
    message: str
    down_revision: str | None


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands beside the code's revisions."""

    revision: str | None  # its alembic_version, None before its first upgrade
    head: str  # the code's newest revision
    has_tables: bool  # arena's tables are there (False: an empty database)
    known: bool  # the revision is one of the code's (a newer arena's otherwise)

    @property
    def status(self) -> str:
        if not self.known:
            return "newer"
        return "up to date" if self.revision == self.head else "behind"

    @property
    def label(self) -> str:
        """The revision as shown to a user."""
        if self.revision is not None:
            return self.revision
        return "none (made before migrations)" if self.has_tables else "none (empty)"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for these scripts, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPTS_DIR))


def revisions() -> list[Revision]:
    """Every revision, oldest first."""
    scripts = _scripts().walk_revisions()  # newest first
    return [Revision(s.revision, s.doc, s.down_revision) for s in reversed(list(scripts))]


def head_revision() -> str:
    return _scripts().get_current_head()


def _state(conn: sa.Connection) -> SchemaState:
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        has_tables = bool(PRE_MIGRATION_TABLES & set(sa.inspect(conn).get_table_names()))
    else:
        has_tables = True
    known = revision is None or revision in {r.id for r in revisions()}
    return SchemaState(revision, head_revision(), has_tables, known)


@contextlib.contextmanager
def _reported_errors() -> Iterator[None]:
    """A database that cannot be reached (or locked past the busy timeout) as one line."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open the database: {one_line(exc)}") from None


def schema_state(engine: sa.Engine) -> SchemaState:
    """The database's revision beside the code's; changes nothing."""
    with _reported_errors(), engine.connect() as conn:
        return _state(conn)


def _newer_error(engine: sa.Engine, state: SchemaState) -> StoreError:
    return StoreError(
        f"the database at {engine.url.render_as_string(hide_password=True)} is at schema revision "
        f"{state.revision}, which this arena does not know (its newest is {state.head}): "
        "a newer arena has upgraded it; upgrade arena to use it"
    )


@contextlib.contextmanager
def _locked_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that holds the upgrade lock: concurrent openers wait, then find it done."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # pysqlite would begin only at the first write, and commit around DDL; BEGIN IMMEDIATE
            # takes the write lock now, so a second process waits (busy_timeout) instead of both
            # reading "not upgraded" and the second failing on a stale snapshot
            dbapi_conn = conn.connection.dbapi_connection
            saved = dbapi_conn.isolation_level
            dbapi_conn.isolation_level = None
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                dbapi_conn.isolation_level = saved
            return
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(
                    sa.text(
                        f"SELECT pg_advisory_xact_lock({_PG_LOCK_CLASS}, "
                        "hashtext(COALESCE(current_schema(), '')))"
                    )
                )
            yield conn


def upgrade(engine: sa.Engine) -> tuple[SchemaState, SchemaState]:
    """The database to the newest revision; its state before and after (equal when up to date).

    A database at a revision the code does not know is a StoreError and is left as it is.
    """
    before = schema_state(engine)  # without the lock: the common case, already up to date
    if before.status == "up to date":
        return before, before
    if before.status == "newer":
        raise _newer_error(engine, before)
    with _reported_errors(), _locked_transaction(engine) as conn:
        before = _state(conn)  # again: another process may have upgraded it meanwhile
        if before.status == "newer":
            raise _newer_error(engine, before)
        if before.status == "behind":
            command.upgrade(alembic_config(conn), "head")
        after = _state(conn)
    return before, after
