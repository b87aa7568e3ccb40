"""The voting server's reads and writes: blind derivatives, battles, and the atomic vote path.

Battles and votes are append-only: a vote is "consumed" by its unique battle_id, so the database
itself guarantees one vote per battle across any number of server processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa

from arena.errors import ArenaError
from arena.store.engine import apply_sqlite_pragmas
from arena.store.tables import Attempt, Derivative, StoredImage
from arena.store.writer import insert_ignoring_duplicates


def successful_outputs(engine: sa.Engine, run_id: str | None = None) -> list[dict]:
    """Every distinct successful, non-warm-up benchmark output with its stored file: what battles may
    show (and judges and checks look at); only one run's with `run_id`.

    Traffic attempts (the gateway's, source "traffic") never enter the blind pool: they answer no
    challenge, and an application's image is not arena's to show."""
    a, i = Attempt.__table__, StoredImage.__table__
    query = (
        sa.select(
            a.c.challenge,
            a.c.task,
            a.c.category,
            a.c.model,
            a.c.provider,
            a.c.image_sha256,
            i.c.path,
        )
        .join(i, i.c.sha256 == a.c.image_sha256)
        .where(
            a.c.ok == sa.true(),
            a.c.warmup == sa.false(),
            a.c.image_sha256.is_not(None),
            a.c.source == "benchmark",
            *([a.c.run_id == run_id] if run_id is not None else []),
        )
        .distinct()
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def derivative_map(engine: sa.Engine) -> dict[tuple[str, str], dict]:
    """(original sha256, box) -> the derivative row."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Derivative.__table__))
        return {(r.original_sha256, r.box): dict(r._mapping) for r in rows}


def add_derivatives(engine: sa.Engine, rows: list[dict]) -> None:
    """Record derivatives; one already recorded by another process is left as it is."""
    if rows:
        with engine.begin() as conn:
            conn.execute(insert_ignoring_duplicates(engine, Derivative.__table__), rows)


# The vote path does not go through SQLAlchemy: a request's few statements are hand-written SQL on
# the path's own connections (asyncpg on PostgreSQL, sqlite3 on SQLite), in autocommit, so each is
# one round trip with no BEGIN/COMMIT and no pre-ping. PostgreSQL: a battle is 1 round trip (one
# statement that checks the guard, bumps the side counter and stores the battle; the session's
# battles are read first only when the server process does not know the session), a vote 1 (an
# INSERT ... SELECT that checks the battle, computes the flags and consumes it). SQLite (in-process)
# runs the battle's two writes in one transaction. Times go to SQLite in SQLAlchemy's own text
# format, so both paths read the same rows.

_SIDE_RULE = (
    "CASE WHEN 2 * battle_sides.a_left < battle_sides.issued THEN 1 "
    "WHEN 2 * battle_sides.a_left > battle_sides.issued THEN 0 ELSE :coin END"
)
# A battle is stored only while the session's latest battle is still the one the caller knows
# (:after_id issued at :after_at; '' for a session without battles): the caller chose the pair from
# what it knew the session had seen, and the guard turns a stale view (another server process has
# issued a battle to this session since) into "not stored, read again" in the same statement.
_NOTHING_NEWER = (
    "NOT EXISTS (SELECT 1 FROM battles WHERE session = :session AND issued_at >= :after_at "
    "AND id <> :after_id)"
)
_UPSERT_SIDES = (
    "INSERT INTO battle_sides (challenge, model_a, model_b, issued, a_left, last_a_left) "
    f"SELECT :challenge, :model_a, :model_b, 1, :coin, :coin WHERE {_NOTHING_NEWER} "
    "ON CONFLICT (challenge, model_a, model_b) DO UPDATE SET issued = battle_sides.issued + 1, "
    f"a_left = battle_sides.a_left + {_SIDE_RULE}, last_a_left = {_SIDE_RULE} RETURNING last_a_left"
)
_BATTLE_COLUMNS = (
    "id",
    "session",
    "challenge",
    "task",
    "category",
    "model_left",
    "provider_left",
    "image_left",
    "view_left",
    "model_right",
    "provider_right",
    "image_right",
    "view_right",
    "view_source",
    "issued_at",
    "expires_at",
    "weights_json",
    "ip_hash",
    "user_agent",
)
_SIDED = ("model", "provider", "image", "view")  # the columns that follow the side of their output
_VOTE_SQL = """
WITH f AS MATERIALIZED (
  SELECT b.*, CASE WHEN b.dwell_ms < :min_dwell_ms THEN 1 ELSE 0 END AS fast,
         CASE WHEN (SELECT COUNT(*) FROM votes v WHERE v.voter = :voter AND v.created_at >= :since) >= :burst_votes
              THEN 1 ELSE 0 END AS burst,
         CASE WHEN EXISTS (SELECT 1 FROM votes v WHERE v.voter = :voter AND v.challenge || '' = b.challenge
                           AND ((v.model_left = b.model_left AND v.model_right = b.model_right)
                                OR (v.model_left = b.model_right AND v.model_right = b.model_left)))
              THEN 1 ELSE 0 END AS repeat_pair
  FROM (SELECT battles.*, {dwell} AS dwell_ms FROM battles
        WHERE id = :battle_id AND session = :voter AND expires_at > :now) b
)
INSERT INTO votes (battle_id, created_at, challenge, task, category, model_left, model_right, provider_left,
                   provider_right, image_left, image_right, outcome, voter, ip_hash, dwell_ms, flagged, flag_reason)
SELECT id, :now, challenge, task, category, model_left, model_right, provider_left, provider_right, image_left,
       image_right, :outcome, :voter, :ip_hash, dwell_ms, fast + burst + repeat_pair > 0,
       NULLIF(SUBSTR(CASE WHEN fast = 1 THEN ',fast' ELSE '' END || CASE WHEN burst = 1 THEN ',burst' ELSE '' END
                     || CASE WHEN repeat_pair = 1 THEN ',repeat_pair' ELSE '' END, 2), '')
FROM f
WHERE TRUE
ON CONFLICT DO NOTHING
RETURNING model_left, provider_left, model_right, provider_right
"""
# A repeated pair is looked up among the voter's votes (few) by ix_votes_voter_created: `challenge || ''`
# keeps both planners off ix_votes_challenge (all the votes of a challenge), which they otherwise pick
# (PostgreSQL in a bitmap AND) and which costs ~1 ms at 50k votes.
_DWELL_MS = {  # milliseconds from the battle's issue to :now, to 0.1 ms (SQLite's clock math: to 1 ms)
    "postgresql": "ROUND(EXTRACT(EPOCH FROM (:now - battles.issued_at)) * 1000, 1)",
    "sqlite": "ROUND((JULIANDAY(:now) - JULIANDAY(battles.issued_at)) * 86400000.0, 1)",
}
_VOTE_PATH_SQL = {
    # the columns of SessionBattle, in issue order
    "session_battles": "SELECT b.id, b.challenge, b.task, b.image_left, b.image_right, b.view_source, b.expires_at, "
    "CASE WHEN v.id IS NULL AND b.expires_at > :now THEN 1 ELSE 0 END, b.issued_at "
    "FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
    "WHERE b.session = :session ORDER BY b.issued_at",
    "upsert_sides": _UPSERT_SIDES,
    "insert_battle": f"INSERT INTO battles ({', '.join(_BATTLE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _BATTLE_COLUMNS)})",
    # PostgreSQL: the side counter and the battle in one statement; :a_* / :b_* are the columns
    # with the name-first model's output on the left / on the right
    "issue_battle": f"WITH sides AS ({_UPSERT_SIDES}) INSERT INTO battles ({', '.join(_BATTLE_COLUMNS)}) SELECT "
    + ", ".join(
        f"CASE WHEN sides.last_a_left = 1 THEN :a_{c} ELSE :b_{c} END"
        if c.endswith(("_left", "_right")) and c.split("_")[0] in _SIDED
        else ":" + c
        for c in _BATTLE_COLUMNS
    )
    + " FROM sides RETURNING id",
    "vote_state": "SELECT b.session, b.expires_at, v.id FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
    "WHERE b.id = :battle_id",
    "views": "SELECT session, view_left, view_right, view_source FROM battles WHERE id = :battle_id",
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite DateTime stores it (so comparisons and reads agree)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# asyncpg binds $n parameters whose types the server infers; a parameter inside CASE or arithmetic
# would be inferred as text, so each one is cast to its column's type (everything else is text).
_PG_TYPES = {
    "now": "timestamptz",
    "since": "timestamptz",
    "issued_at": "timestamptz",
    "expires_at": "timestamptz",
    "after_at": "timestamptz",
    "min_dwell_ms": "float8",
    "coin": "int4",
    "burst_votes": "int8",
}


def positional_sql(text: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as asyncpg's typed `$n`, and the names in $n order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}::{_PG_TYPES.get(name, 'text')}"

    return re.sub(r"(?<![:\w]):(\w+)", number, text), tuple(names)


def asyncpg_connect_args(url: sa.URL) -> dict:
    """asyncpg.connect arguments for a SQLAlchemy PostgreSQL URL; libpq's `options=-c name=value`
    (which asyncpg does not read) become server settings."""
    settings, extra = {}, {}
    for key, value in url.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if key == "options":
            tokens = " ".join(values).replace("-c ", "-c").split()
            for token in tokens:
                name, _, setting = token.removeprefix("-c").removeprefix("--").partition("=")
                if not setting:
                    raise ArenaError(
                        f"database_url: cannot read the option {token!r} (expected -c name=value)"
                    )
                settings[name.replace("-", "_")] = setting
        elif key in ("sslmode", "ssl"):
            extra["ssl"] = values[-1]
        elif key == "connect_timeout":
            extra["timeout"] = float(values[-1])
        elif key == "application_name":
            settings[key] = values[-1]
        else:
            raise ArenaError(
                f"database_url: the voting server's driver (asyncpg) does not take {key!r}"
            )
    return {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
        "server_settings": {"application_name": "arena-vote-path", **settings},
        **extra,
    }


class Connections:
    """A few asyncpg connections for one event loop: a free list, a FIFO of waiting requests, and a
    broken or interrupted connection closed and replaced.

    asyncpg's Pool spends twice the CPU per statement (measured, 32 tasks on 4 connections: 75 vs
    34 us a statement) on what this path does not need: a reset query on release (a round trip),
    inactivity timers and holder objects.
    """

    def __init__(self, connect_args: dict, size: int) -> None:
        self.connect_args, self.size = connect_args, size
        self.idle: list = []
        self.waiters: collections.deque = collections.deque()
        self.count = 0  # open or opening
        self.closed = False

    async def fetch(self, text: str, args: list) -> list:
        conn = await self._acquire()
        try:
            rows = await conn.fetch(text, *args)
        except BaseException as exc:
            import asyncpg

            # an SQL error leaves the connection usable; anything else (a broken socket, a request
            # cancelled mid-statement) may leave it mid-protocol
            if isinstance(exc, asyncpg.PostgresError) and not conn.is_closed():
                self._release(conn)
            else:
                self._discard(conn)
            raise
        self._release(conn)
        return rows

    async def _acquire(self):
        import asyncpg

        while True:
            if self.idle:
                return self.idle.pop()
            if self.count < self.size:
                self.count += 1
                try:
                    return await asyncpg.connect(**self.connect_args)
                except BaseException:
                    self.count -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # handed over just as this request was cancelled
                raise
            if conn is not None:  # else a connection was dropped: open a new one
                return conn

    def _wake(self, conn=None) -> bool:
        """Hand `conn` (or a free slot, for None) to the oldest live waiter; False when none waits."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _release(self, conn) -> None:
        if self.closed:
            self._discard(conn)
        elif not self._wake(conn):
            self.idle.append(conn)

    def _discard(self, conn) -> None:
        self.count -= 1
        with contextlib.suppress(Exception):
            conn.terminate()
        self._wake()

    def terminate_idle(self) -> None:
        while self.idle:
            self._discard(self.idle.pop())

    def terminate(self) -> None:
        """Close every idle connection now and every connection in use when it comes back."""
        self.closed = True
        self.terminate_idle()


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL every INTERVAL_S from a thread, off the event loop."""

    INTERVAL_S = 1.0

    def __init__(self, path: str) -> None:
        import threading

        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arena-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            while not self._stop.wait(self.INTERVAL_S):
                with contextlib.suppress(sqlite3.Error):  # busy or locked: the next pass does it
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# Statements whose commit does not wait for the WAL flush (PostgreSQL's synchronous_commit=off; the
# transaction is still atomic). A battle lost in a database crash only means the vote on it gets
# 404 and the page asks for the next; and a vote's own (synchronous) commit flushes the WAL up to
# and past its battle, so every stored vote has its battle. Measured: ~15% more cycles a second.
ASYNC_COMMIT = frozenset({"issue_battle", "session_battles", "views"})


# The rows VotePath returns: named tuples, so the server reads fields by name at a tuple's cost.


class SessionBattle(NamedTuple):
    """One of a session's battles, as session_battles lists them."""

    id: str
    challenge: str
    task: str
    image_left: str
    image_right: str
    view_source: str | None
    expires_at: datetime
    is_open: int  # 1 when not voted on and not expired at the time asked, else 0
    issued_at: datetime


class StoredVote(NamedTuple):
    """Who made each side of the battle a vote just consumed (what the voter is shown)."""

    model_left: str
    provider_left: str
    model_right: str
    provider_right: str


class VoteState(NamedTuple):
    """Why a battle took no vote: whose it is, when it expires, and its vote's id if it has one."""

    session: str
    expires_at: datetime
    vote_id: int | None


class BattleViews(NamedTuple):
    """The blind derivative files a battle shows, and the session they are shown to."""

    session: str
    view_left: str | None
    view_right: str | None
    view_source: str | None


class VotePath:
    """The vote path's statements, as coroutines for the server's event loop.

    PostgreSQL: asyncpg, up to MAX_CONNECTIONS per event loop (Connections), so a request waiting on
    the database leaves the loop free for the others (psycopg on the loop held the worker for every
    round trip); asyncpg spends less CPU per statement than psycopg (measured: 44 us against 61 us
    sync and 91 us async).
    SQLite: the stdlib driver on the loop (in-process, microseconds per statement), one connection
    per process.
    """

    MAX_CONNECTIONS = 4  # per event loop and kind of commit

    def __init__(self, engine: sa.Engine) -> None:
        self.url = engine.url
        self.dialect = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
        sql = {
            name: text.replace("{dwell}", _DWELL_MS[self.dialect])
            for name, text in {**_VOTE_PATH_SQL, "vote": _VOTE_SQL}.items()
        }
        if self.dialect == "postgresql":
            self.sql = {name: positional_sql(text) for name, text in sql.items()}
            args = asyncpg_connect_args(self.url)
            quick = {
                **args,
                "server_settings": {**args["server_settings"], "synchronous_commit": "off"},
            }
            self._connect_args = {"async": quick, "sync": args}  # by kind of commit
            self._time = lambda value: value
            self._read_time = lambda value: value
        else:
            self.sql = sql
            self._time = _sqlite_time
            self._read_time = lambda value: datetime.fromisoformat(value).replace(tzinfo=UTC)
        self._by_loop: dict[asyncio.AbstractEventLoop, dict[str, Connections]] = {}
        self._sqlite = None

    # --- connections ---

    def _connections(self, name: str) -> Connections:
        """The connections statement `name` runs on, in this event loop: battles are committed without
        waiting for the WAL flush (ASYNC_COMMIT), votes and the rest with it."""
        loop = asyncio.get_running_loop()
        sets = self._by_loop.get(loop)
        if sets is None:
            # an in-process test client runs one event loop per request: drop the sets of loops that are gone
            for gone in [other for other in self._by_loop if other.is_closed()]:
                for connections in self._by_loop.pop(gone).values():
                    connections.terminate()
            sets = self._by_loop[loop] = {
                kind: Connections(args, self.MAX_CONNECTIONS)
                for kind, args in self._connect_args.items()
            }
        return sets["async" if name in ASYNC_COMMIT else "sync"]

    async def _fetch(self, name: str, params: dict) -> list:
        """One statement's rows on PostgreSQL; tried once more when its connection was broken (a
        database restart breaks them all: the retry opens a new one)."""
        import asyncpg

        text, names = self.sql[name]
        args = [params[key] for key in names]
        connections = self._connections(name)
        for attempt in (0, 1):
            try:
                return await connections.fetch(text, args)
            except (
                asyncpg.ConnectionDoesNotExistError,
                asyncpg.AdminShutdownError,
                asyncpg.InterfaceError,
                ConnectionError,
            ):
                if attempt == 1:
                    raise
                connections.terminate_idle()
        raise AssertionError("unreachable")

    def _sqlite_conn(self):
        if self._sqlite is None:
            import sqlite3

            conn = sqlite3.connect(
                self.url.database, isolation_level=None, check_same_thread=False, timeout=30
            )
            apply_sqlite_pragmas(conn)
            # SQLite checkpoints the WAL inside the commit that crosses 1,000 pages: here that is a
            # request on the event loop, and every other request waited ~400 ms for its fsync. A
            # thread of its own checkpoints instead (sqlite3 lets go of the GIL while it works).
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._sqlite = conn
            self._checkpointer = WalCheckpointer(self.url.database)
        return self._sqlite

    async def _rows(self, name: str, params: dict) -> list:
        if self.dialect == "postgresql":
            return await self._fetch(name, params)
        return self._sqlite_conn().execute(self.sql[name], params).fetchall()

    async def aclose(self) -> None:
        """Close the PostgreSQL connections and the SQLite connection."""
        for sets in self._by_loop.values():
            for connections in sets.values():
                connections.terminate()
        self._by_loop.clear()
        if self._sqlite is not None:
            self._checkpointer.stop()
            self._sqlite.close()
            self._sqlite = None

    # --- statements ---

    async def session_battles(self, session: str, now: datetime) -> list[SessionBattle]:
        """A session's battles in issue order, is_open as of `now`; times as datetimes."""
        rows = await self._rows("session_battles", {"session": session, "now": self._time(now)})
        read = self._read_time
        return [SessionBattle(*row[:6], read(row[6]), row[7], read(row[8])) for row in rows]

    async def issue_battle(
        self, battle: dict, coin: bool, after: tuple[str, datetime] | None
    ) -> bool:
        """Store a battle whose outputs are under *_left/*_right, sided by the (challenge, pair) counter,
        if the session's latest battle is still `after` (id, issued_at; None: the session has none).

        False, with nothing stored, when another battle has been issued to the session since. The
        counter is bumped atomically and decides whether the name-first model goes left: the side
        shown less often so far, the coin when both were shown equally
        (arena.sampling.counterbalanced_side).
        """
        model_a, model_b = sorted((battle["model_left"], battle["model_right"]))
        params = {key: battle[key] for key in _BATTLE_COLUMNS}
        after_id, after_at = after if after is not None else ("", _EPOCH)
        params.update(
            issued_at=self._time(battle["issued_at"]),
            expires_at=self._time(battle["expires_at"]),
            model_a=model_a,
            model_b=model_b,
            coin=int(coin),
            after_id=after_id,
            after_at=self._time(after_at),
        )
        flip = (
            battle["model_left"] != model_a
        )  # the outputs as given put the name-first model right
        for key in _SIDED:
            left, right = battle[f"{key}_left"], battle[f"{key}_right"]
            params[f"a_{key}_left"], params[f"a_{key}_right"] = (
                (right, left) if flip else (left, right)
            )
            params[f"b_{key}_left"], params[f"b_{key}_right"] = (
                params[f"a_{key}_right"],
                params[f"a_{key}_left"],
            )
        if self.dialect == "postgresql":
            return bool(await self._fetch("issue_battle", params))
        conn = self._sqlite_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            sided = conn.execute(self.sql["upsert_sides"], params).fetchall()
            if sided:
                prefix = "a_" if sided[0][0] else "b_"
                row = {
                    **params,
                    **{
                        f"{key}_{side}": params[f"{prefix}{key}_{side}"]
                        for key in _SIDED
                        for side in ("left", "right")
                    },
                }
                conn.execute(self.sql["insert_battle"], row)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return bool(sided)

    async def vote(self, params: dict) -> StoredVote | None:
        """Consume the battle with this vote, flags computed from the stored battle and the voter's votes.

        `params`: battle_id, voter, outcome, ip_hash, now, since (start of the burst window),
        min_dwell_ms, burst_votes. Returns the battle's models and providers (StoredVote) when this
        call stored the vote; None when the battle is unknown, another session's, expired
        or already voted on (vote_state tells which). The unique battle_id makes it atomic.
        """
        params = {**params, "now": self._time(params["now"]), "since": self._time(params["since"])}
        rows = await self._rows("vote", params)
        return StoredVote._make(rows[0]) if rows else None

    async def vote_state(self, battle_id: str) -> VoteState | None:
        """A battle's session, expiry and vote id (None before its vote), or None for no battle."""
        rows = await self._rows("vote_state", {"battle_id": battle_id})
        return None if not rows else VoteState(rows[0][0], self._read_time(rows[0][1]), rows[0][2])

    async def views(self, battle_id: str) -> BattleViews | None:
        """A battle's session and derivative files, or None."""
        rows = await self._rows("views", {"battle_id": battle_id})
        return BattleViews._make(rows[0]) if rows else None
