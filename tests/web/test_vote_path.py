"""The vote path on PostgreSQL and across server processes: typed parameters, connection sets that
survive cancellation and a database restart, the guard against battles issued elsewhere, and
workers that share the connections."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from support.processes import stop, wait_until

from arena import store
from arena.errors import ArenaError
from arena.store.tables import Battle
from arena.store.votepath import (
    BattleViews,
    Connections,
    SessionBattle,
    StoredVote,
    VotePath,
    VoteState,
    asyncpg_connect_args,
    positional_sql,
)
from arena.web import create_app

from .factory import (
    BASE,
    TEST_OPTIONS,
    Voter,
    config_table,
    fill_store,
    settings_for,
    write_challenges,
    write_toml,
)
from .test_concurrency import _serve


def test_named_parameters_become_typed_positional_ones_in_first_use_order():
    text, names = positional_sql(
        "WHERE a = :voter AND t > :now OR b = :voter AND c = :coin AND d::text = 'x:y'"
    )
    assert names == ("voter", "now", "coin")
    assert (
        text
        == "WHERE a = $1::text AND t > $2::timestamptz OR b = $1::text AND c = $3::int4 AND d::text = 'x:y'"
    )


def test_libpq_options_of_a_database_url_become_asyncpg_server_settings():
    url = sa.make_url(
        "postgresql+psycopg://bob:pw@db.example:5433/arena"
        "?options=-csearch_path%3Dvotes%20-c%20statement_timeout%3D5000&connect_timeout=7"
    )
    args = asyncpg_connect_args(url)
    assert (args["host"], args["port"], args["user"], args["password"], args["database"]) == (
        "db.example",
        5433,
        "bob",
        "pw",
        "arena",
    )
    assert args["server_settings"] == {
        "application_name": "arena-vote-path",
        "search_path": "votes",
        "statement_timeout": "5000",
    }
    assert args["timeout"] == 7.0
    with pytest.raises(ArenaError, match="target_session_attrs"):
        asyncpg_connect_args(sa.make_url("postgresql://h/db?target_session_attrs=any"))
    with pytest.raises(ArenaError, match="-c name=value"):
        asyncpg_connect_args(sa.make_url("postgresql://h/db?options=-cjit"))


def _battles(settings) -> list:
    engine = store.open_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(sa.select(Battle.__table__).order_by(Battle.__table__.c.issued_at))
            )
    finally:
        engine.dispose()


def _other_process(app, voter: Voter) -> TestClient:
    """A client of another server process (another app on the same store) with the voter's cookie."""
    client = TestClient(app, base_url=BASE)
    client.cookies = voter.client.cookies
    return client


def test_a_battle_issued_by_another_process_is_returned_not_rerolled(make_app, web_settings):
    first, second = make_app(), make_app()
    voter = Voter(first)
    battle = voter.battle().json()
    assert (
        voter.vote(battle["battle_id"]).status_code == 200
    )  # the first process knows the session, nothing open
    elsewhere = _other_process(second, voter).post("/api/battles", headers=voter.headers)
    assert elsewhere.status_code == 200
    # the first process still believes nothing is open; the store's guard must make it see the new battle
    again = voter.battle()
    assert again.status_code == 200
    assert again.json()["battle_id"] == elsewhere.json()["battle_id"]
    assert len(_battles(web_settings)) == 2


def test_no_image_is_shown_twice_to_a_session_served_by_two_processes(make_app, web_settings):
    first, second = make_app(), make_app()
    voter = Voter(first)
    clients = [voter.client, _other_process(second, voter)]
    served = 0
    while True:
        client = clients[served % 2]
        reply = client.post("/api/battles", headers=voter.headers)
        if reply.status_code == 404:
            assert reply.json()["error"] == "no_battle"
            break
        assert reply.status_code == 200
        vote = client.post(
            "/api/votes",
            headers=voter.headers,
            json={"battle_id": reply.json()["battle_id"], "choice": "tie"},
        )
        assert vote.status_code == 200
        served += 1
    images = [
        image for row in _battles(web_settings) for image in (row.image_left, row.image_right)
    ]
    assert served >= 4 and len(images) == 2 * served
    assert len(set(images)) == len(images), "an image was shown twice to one session"


def test_the_vote_path_returns_rows_named_as_their_columns(make_app, web_settings):
    voter = Voter(make_app())
    battle_id = voter.battle().json()["battle_id"]
    (stored,) = _battles(web_settings)
    stored = stored._asdict()
    for time_column in ("issued_at", "expires_at"):  # SQLite hands them back without their zone
        value = stored[time_column]
        stored[time_column] = value if value.tzinfo else value.replace(tzinfo=UTC)
    stored = SimpleNamespace(**stored)
    engine = store.open_engine(web_settings.database_url)
    path = VotePath(engine)

    async def read_vote_and_read_again():
        before = await path.session_battles(stored.session, stored.issued_at)
        views = await path.views(battle_id)
        vote = await path.vote(
            {
                "battle_id": battle_id,
                "voter": stored.session,
                "outcome": "tie",
                "ip_hash": "ip",
                "now": stored.issued_at + timedelta(seconds=5),
                "since": stored.issued_at,
                "min_dwell_ms": 0.0,
                "burst_votes": 100,
            }
        )
        after = await path.session_battles(stored.session, stored.issued_at)
        state = await path.vote_state(battle_id)
        await path.aclose()
        return before, views, vote, after, state

    try:
        before, views, vote, after, state = asyncio.run(read_vote_and_read_again())
    finally:
        engine.dispose()
    (row,) = before
    assert isinstance(row, SessionBattle)
    for field in SessionBattle._fields:
        if field != "is_open":
            assert getattr(row, field) == getattr(stored, field), field
    assert row.is_open == 1 and after[0].is_open == 0
    assert isinstance(views, BattleViews) and views == BattleViews(
        stored.session, stored.view_left, stored.view_right, stored.view_source
    )
    assert isinstance(vote, StoredVote) and vote == StoredVote(
        stored.model_left, stored.provider_left, stored.model_right, stored.provider_right
    )
    assert isinstance(state, VoteState)
    assert (state.session, state.expires_at) == (stored.session, stored.expires_at)
    assert state.vote_id is not None


def test_connection_sets_hold_at_most_their_size_and_drop_interrupted_connections(postgres_url):
    args = asyncpg_connect_args(sa.make_url(postgres_url))

    async def main() -> None:
        connections = Connections(args, size=2)
        results = await asyncio.gather(
            *(connections.fetch("SELECT $1::int * 2, pg_sleep(0.01)", [i]) for i in range(12))
        )
        assert [rows[0][0] for rows in results] == [2 * i for i in range(12)]
        assert connections.count == 2 and len(connections.idle) == 2
        # cancelled mid-statement: the connection may be mid-protocol, so it is closed, not reused
        task = asyncio.create_task(connections.fetch("SELECT pg_sleep(5)", []))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert connections.count == 1
        # cancelled while waiting for a connection: the others go on and nothing leaks
        held = [
            asyncio.create_task(connections.fetch("SELECT pg_sleep(0.3)", [])) for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(connections.fetch("SELECT 1", []))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.gather(*held)
        assert (await connections.fetch("SELECT 7", []))[0][0] == 7
        assert connections.count == 2 and not connections.waiters
        # an SQL error leaves its connection in the set
        import asyncpg

        with pytest.raises(asyncpg.PostgresError):
            await connections.fetch("SELECT 1/0", [])
        assert connections.count == 2
        connections.terminate()
        assert connections.count == 0

    asyncio.run(main())


def test_connections_broken_by_a_database_restart_cost_no_request(postgres_url, tmp_path):
    settings = settings_for(tmp_path, postgres_url, write_challenges(tmp_path / "challenges"))
    fill_store(settings)
    admin = sa.create_engine(
        postgres_url.split("?")[0].replace("postgresql://", "postgresql+psycopg://", 1)
    )
    with TestClient(
        create_app(settings, TEST_OPTIONS), base_url=BASE
    ) as client:  # one event loop: kept connections
        headers = {"Origin": BASE, "X-CSRF-Token": client.get("/api/session").json()["csrf_token"]}
        battle = client.post("/api/battles", headers=headers)
        assert battle.status_code == 200
        with admin.begin() as conn:  # what a restart does to the server's open connections
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'arena-vote-path'"
                )
            ).scalar()
        assert killed >= 1
        vote = client.post(
            "/api/votes",
            headers=headers,
            json={"battle_id": battle.json()["battle_id"], "choice": "a"},
        )
        assert vote.status_code == 200, vote.text
        assert client.post("/api/battles", headers=headers).status_code == 200
    admin.dispose()


def _listening_workers(server_pid: int) -> list[int]:
    return [
        int(pid)
        for pid in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    ]


def _sockets_on(port: int, state: str) -> set[str]:
    """Socket inodes of this machine's TCP sockets in `state` (01 established, 0A listening) on local `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


@pytest.mark.slow
def test_server_workers_each_take_a_share_of_the_connections(tmp_path, postgres_url):
    config = write_toml(
        tmp_path / "arena.toml",
        config_table(tmp_path, postgres_url, write_challenges(tmp_path / "challenges")),
    )
    proc, base = _serve(config, 2, tmp_path)
    port = int(base.rsplit(":", 1)[1])
    clients = []
    try:
        # both workers listening, each on its own socket
        wait_until(lambda: len(_sockets_on(port, "0A")) >= 2, what="the second worker to listen")
        for _ in range(40):  # keep-alive connections, opened at once as a browser crowd does
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        for sock in clients:
            assert b" 200 " in sock.recv(4096)
        established = _sockets_on(port, "01")
        share = {}
        for pid in _listening_workers(proc.pid):
            owned = {
                os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
                for fd in os.listdir(f"/proc/{pid}/fd")
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            }
            share[pid] = len(owned & established)
        workers = {pid: n for pid, n in share.items() if n}
        assert sum(share.values()) == 40, share
        # uvicorn's shared socket gave one worker nearly all of them; SO_REUSEPORT spreads them by hash
        assert len(workers) == 2 and min(workers.values()) >= 8, share
        # a worker that dies is started again
        dead = next(iter(workers))
        os.kill(dead, signal.SIGKILL)
        wait_until(
            lambda: dead not in _listening_workers(proc.pid) and len(_sockets_on(port, "0A")) >= 2,
            what="the dead worker to be replaced",
        )
    finally:
        for sock in clients:
            sock.close()
        alive = _listening_workers(proc.pid) if proc.poll() is None else []
        stop(proc)  # the server, then anything left of its session

    def running(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False

    assert alive
    # (multiprocessing's resource tracker leaves a moment after its parent)
    wait_until(
        lambda: not any(running(pid) for pid in alive), what="the workers to end with the server"
    )


@pytest.mark.slow
def test_the_wal_is_checkpointed_by_a_thread_not_inside_a_commit(tmp_path, monkeypatch):
    import sqlite3

    from arena.store.votepath import WalCheckpointer

    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(
        "PRAGMA wal_autocheckpoint=0"
    )  # as the vote path's connection: commits never checkpoint
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])

    def in_main_file() -> int:
        """Rows the database file itself holds, the WAL ignored (immutable=1 reads the main file only)."""
        reader = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return reader.execute("SELECT count(*) FROM t").fetchone()[0]
        # The table may still be only in the WAL, or a checkpoint may be copying pages this
        # instant (an immutable reader then sees a half-written file): not there yet.
        except sqlite3.DatabaseError:
            return 0
        finally:
            reader.close()

    assert in_main_file() == 0
    monkeypatch.setattr(WalCheckpointer, "INTERVAL_S", 0.05)
    checkpointer = WalCheckpointer(str(path))
    try:
        wait_until(lambda: in_main_file() >= 2000, what="a checkpoint to copy every row")
    finally:
        checkpointer.stop()
    writer.close()
    assert in_main_file() == 2000
