"""The gateway's key check: 401s that never echo a key, revokes seen within cache_s, budgets and rates
shared by two KeyRings on one database (two gateway processes), spend that adds up exactly, and a
store outage that loses nothing. Time is an injected clock: nothing sleeps."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import sqlalchemy as sa
from support.scan import database_dump

from arena import store
from arena.gateway.auth import Grant, KeyRing
from arena.gateway.replies import GatewayError
from arena.store.keys import create_key, hash_key, list_keys, revoke_key


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def make_ring(engine, clock, **options) -> KeyRing:
    # flush_s of an hour: the background never writes during a test; the test flushes by hand
    options = {"cache_s": 2.0, "flush_s": 3600.0, **options}
    return KeyRing(engine, clock=clock, **options)


def refused(ring: KeyRing, header, **kwargs) -> GatewayError:
    async def attempt():
        try:
            with pytest.raises(GatewayError) as info:
                await ring.authorize(header, **kwargs)
        finally:
            await ring.aclose()
        return info.value

    return asyncio.run(attempt())


def row(engine, name):
    return next(r for r in list_keys(engine) if r.name == name)


def test_no_header_not_bearer_and_unknown_keys_are_401_without_the_key(engine):
    key = create_key(engine, "app")

    async def scenario():
        ring = make_ring(engine, Clock())
        assert await ring.authorize(f"Bearer {key}") == Grant("app")
        assert await ring.authorize(f"bearer   {key} ") == Grant("app")  # the scheme is any case
        errors = []
        wrong = "arena-" + "x" * 43
        for header in (
            None,
            "",
            "  ",
            f"Basic {key}",
            key,
            "Bearer",
            "Bearer sk-proj-123",
            f"Bearer {wrong}",
            f"Bearer {key}x",
        ):
            with pytest.raises(GatewayError) as info:
                await ring.authorize(header)
            errors.append((header, info.value))
        await ring.aclose()
        return errors

    for header, error in asyncio.run(scenario()):
        body = error.body()["error"]
        assert error.status == 401, header
        assert body["code"] == "invalid_api_key" and body["type"] == "authentication_error"
        assert "Authorization: Bearer" in body["message"]
        assert key[6:] not in body["message"] and "x" * 20 not in body["message"]
        assert "sk-proj" not in body["message"]


def test_a_revoke_takes_effect_within_cache_s_and_a_new_key_at_once(engine):
    clock = Clock()
    key = create_key(engine, "app")

    async def scenario():
        ring = make_ring(engine, clock)
        assert (await ring.authorize(f"Bearer {key}")).key_name == "app"
        revoke_key(engine, "app")  # by another process: `arena keys revoke app`
        clock.advance(1.9)
        still = await ring.authorize(f"Bearer {key}")  # inside the cache time: the row read before
        clock.advance(0.1)  # cache_s since the last read: re-read before answering
        with pytest.raises(GatewayError) as info:
            await ring.authorize(f"Bearer {key}")
        late = create_key(engine, "late")  # made after the ring's last read
        clock.advance(0.5)
        fresh = await ring.authorize(f"Bearer {late}")
        await ring.aclose()
        return still, info.value, fresh

    still, error, fresh = asyncio.run(scenario())
    assert still.key_name == "app"
    assert error.status == 401 and "revoked" in error.message and key not in error.message
    assert fresh == Grant("late")


def test_budget_counts_unsaved_spend_and_another_rings_spend(engine):
    """Two KeyRings on one database are two gateway processes: each sees the other's spend once
    it is written and read back, and its own at once."""
    clock = Clock()
    key = create_key(engine, "team", budget_usd=1.0)
    header = f"Bearer {key}"

    async def scenario():
        a, b = make_ring(engine, clock), make_ring(engine, clock)
        a.charge(await a.authorize(header, expected_cost_usd=0.25), 0.5)
        with pytest.raises(GatewayError) as own:  # 0.5 unsaved + 0.6 > 1.0
            await a.authorize(header, expected_cost_usd=0.6)
        assert await b.authorize(header, expected_cost_usd=0.6)  # b has not seen a's spend yet
        assert await a.flush()
        clock.advance(2.0)
        with pytest.raises(GatewayError) as other:  # b re-read: 0.5 spent + 0.6 > 1.0
            await b.authorize(header, expected_cost_usd=0.6)
        b.charge(await b.authorize(header, expected_cost_usd=0.5), 0.5)
        await b.flush()
        clock.advance(2.0)
        with pytest.raises(GatewayError) as spent:  # the whole budget spent: nothing more
            await a.authorize(header)
        await a.aclose()
        await b.aclose()
        return own.value, other.value, spent.value

    own, other, spent = asyncio.run(scenario())
    for error in (own, other, spent):
        assert error.status == 402 and error.code == "budget_exceeded"
        assert "'team'" in error.message and "of $1" in error.message
        assert error.body()["error"]["type"] == "insufficient_quota"
    assert "spent $0.5 of $1" in own.message and "$0.6" in own.message
    assert "spent $0.5 of $1" in other.message
    assert "spent $1 of $1" in spent.message
    figures = row(engine, "team")
    assert figures.spent_usd == 1.0 and figures.requests == 2 and figures.last_used_at is not None


def test_rate_per_min_is_a_sliding_window_with_retry_after(engine):
    clock = Clock()
    key = create_key(engine, "slow", rate_per_min=3)
    header = f"Bearer {key}"

    async def scenario():
        ring = make_ring(engine, clock, cache_s=3600.0)
        seen = []
        for step in (0.0, 10.0, 10.0):  # three requests at t = 0, 10, 20
            clock.advance(step)
            await ring.authorize(header)
        for step in (0.0, 30.0, 9.9):  # t = 20, 50, 59.9: the first leaves the window at t = 60
            clock.advance(step)
            with pytest.raises(GatewayError) as info:
                await ring.authorize(header)
            seen.append(info.value)
        clock.advance(0.2)  # t = 60.1: the request at t = 0 has left, refused ones never counted
        assert await ring.authorize(header)
        with pytest.raises(GatewayError) as info:  # t = 10, 20 and 60.1 in the window
            await ring.authorize(header)
        seen.append(info.value)
        await ring.aclose()
        return seen

    at_20, at_50, at_59, at_60 = asyncio.run(scenario())
    for error in (at_20, at_50, at_59, at_60):
        assert error.status == 429 and error.code == "rate_limit_exceeded"
        assert error.body()["error"]["type"] == "rate_limit_error"
        assert "'slow'" in error.message and "3 requests per minute" in error.message
    assert at_20.headers == {"Retry-After": "40"}  # t = 0 leaves at 60
    assert at_50.headers == {"Retry-After": "10"}
    assert at_59.headers == {"Retry-After": "1"}  # 0.1 s: rounded up, never "0"
    assert at_60.headers == {"Retry-After": "10"}  # t = 10 leaves at 70


def test_rate_per_min_is_shared_by_two_rings_through_the_store(engine):
    clock = Clock()
    key = create_key(engine, "shared", rate_per_min=4)
    header = f"Bearer {key}"

    async def scenario():
        a, b = make_ring(engine, clock), make_ring(engine, clock)
        b.charge(await b.authorize(header), 0.0)  # b: 1 request
        for _ in range(2):  # a: 2 requests, settled and written
            a.charge(await a.authorize(header), 0.0)
        await a.flush()
        clock.advance(2.0)  # b re-reads: a's 2 count in b's window beside b's own 1
        b.charge(await b.authorize(header), 0.0)  # the 4th in this minute
        with pytest.raises(GatewayError) as info:
            await b.authorize(header)
        clock.advance(60.0)
        assert await b.authorize(header)  # a minute on, the window is empty again
        await a.aclose()
        await b.aclose()
        return info.value

    error = asyncio.run(scenario())
    assert error.status == 429 and error.headers["Retry-After"] == "58"  # b's first left at +60


def test_concurrent_charges_from_two_processes_add_up_exactly(engine):
    """Two rings, each on its own thread and event loop, charge and flush at the same time."""
    key = create_key(engine, "busy")
    per_ring, cost = 300, 0.125  # a binary fraction: the sum is exact in floating point

    def process() -> None:
        async def work():
            ring = make_ring(engine, Clock())
            grant = await ring.authorize(f"Bearer {key}")
            flushes = []
            for n in range(per_ring):
                ring.charge(grant, cost)
                if n % 25 == 0:
                    flushes.append(asyncio.ensure_future(ring.flush()))
                    await asyncio.sleep(0)
            await asyncio.gather(*flushes)
            await ring.aclose()

        asyncio.run(work())

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    figures = row(engine, "busy")
    assert figures.requests == 2 * per_ring
    assert figures.spent_usd == 2 * per_ring * cost


def test_a_store_outage_keeps_the_spend_and_the_known_keys(engine, caplog):
    clock = Clock()
    key = create_key(engine, "app", budget_usd=10.0)
    moved = "gateway_keys_away"

    def move(src, dst):
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {src} RENAME TO {dst}"))

    async def scenario():
        ring = make_ring(engine, clock)
        grant = await ring.authorize(f"Bearer {key}")
        move("gateway_keys", moved)  # the table is gone: every write and read fails
        try:
            ring.charge(grant, 1.5)
            ring.charge(grant, 0.5)
            with caplog.at_level(logging.WARNING, logger="arena.gateway"):
                assert await ring.flush() is False
                assert await ring.flush() is False  # a second failure within the minute: no line
            clock.advance(5.0)  # the cache is stale and cannot be re-read: the keys known go on
            again = await ring.authorize(f"Bearer {key}", expected_cost_usd=8.0)
            with pytest.raises(GatewayError) as over:  # the unsaved 2.0 still counts
                await ring.authorize(f"Bearer {key}", expected_cost_usd=8.5)
        finally:
            move(moved, "gateway_keys")
        ring.charge(again, 1.0)
        await ring.aclose()  # the store is back: everything is written
        return over.value

    over = asyncio.run(scenario())
    assert over.status == 402 and "spent $2 of $10" in over.message
    lines = [r.getMessage() for r in caplog.records if r.name == "arena.gateway"]
    assert len(lines) == 2, lines  # one line for the outage (not one per try), one when it ends
    assert "could not save the spend of 1 key(s)" in lines[0] and "answers again" in lines[1]
    assert key[6:] not in lines[0]
    figures = row(engine, "app")
    assert figures.spent_usd == 3.0 and figures.requests == 3


def test_no_row_and_no_log_record_holds_a_key(db_url, engine, caplog):
    """After keys are made, used, charged, refused and revoked, the whole database dump and every
    log record (SQL echo included) hold neither key, only their hashes."""
    made = [create_key(engine, f"k{n}", budget_usd=1.0, rate_per_min=100) for n in range(3)]
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # every statement and parameter

    async def scenario():
        ring = make_ring(engine, Clock())
        for key in made:
            ring.charge(await ring.authorize(f"Bearer {key}", expected_cost_usd=0.1), 0.25)
        await ring.flush()
        for key in made:
            with pytest.raises(GatewayError):
                await ring.authorize(f"Bearer {key}", expected_cost_usd=5.0)
            with pytest.raises(GatewayError):
                await ring.authorize(f"Bearer {key[:-1]}")
        await ring.aclose()

    try:
        with caplog.at_level(logging.DEBUG):
            asyncio.run(scenario())
            revoke_key(engine, "k0")
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    dump = database_dump(db_url)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "UPDATE gateway_keys" in logged  # the scan saw the statements
    for key in made:
        assert hash_key(key) in dump  # the scan reads the rows: the hash is there...
        secret = key.removeprefix("arena-")
        assert secret not in dump and secret[:20] not in dump  # ...the key never
        assert secret not in logged and secret[:20] not in logged
    assert row(engine, "k1").spent_usd == 0.25


def test_a_playground_grant_is_not_charged_to_a_key(engine):
    key = create_key(engine, "app", budget_usd=1.0)

    async def scenario():
        ring = make_ring(engine, Clock())
        ring.charge(Grant("playground:visitor-1", playground=True), 0.5)  # its own allowance
        ring.charge(await ring.authorize(f"Bearer {key}"), None)  # an unknown cost counts as 0
        await ring.aclose()

    asyncio.run(scenario())
    assert [(r.name, r.spent_usd, r.requests) for r in list_keys(engine)] == [("app", 0.0, 1)]


def test_made_up_keys_cost_the_store_one_read_per_miss_refresh_s(engine):
    clock = Clock()
    key = create_key(engine, "app")
    reads = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "gateway_keys" in statement:
            reads.append(statement)

    async def scenario():
        ring = make_ring(engine, clock)
        await ring.authorize(f"Bearer {key}")
        for n in range(200):  # a flood of keys that do not exist, within 0.5 s
            if n == 100:
                clock.advance(0.5)
            with pytest.raises(GatewayError):
                await ring.authorize(f"Bearer arena-{n:043d}")
        await ring.aclose()

    asyncio.run(scenario())
    sa.event.remove(engine, "before_cursor_execute", count)
    assert len(reads) == 1 + 1 + 1  # the first read, one at +0.5 s, and aclose's


def test_a_store_that_cannot_be_read_at_start_is_503_not_401(engine):
    key = create_key(engine, "app")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE gateway_keys RENAME TO gateway_keys_away"))
    try:
        error = refused(make_ring(engine, Clock()), f"Bearer {key}")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE gateway_keys_away RENAME TO gateway_keys"))
    assert error.status == 503 and error.code == "key_store_unavailable"
