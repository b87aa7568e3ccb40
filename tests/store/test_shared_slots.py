"""A run's shared slots and claims on SQLite and PostgreSQL: a take gets at most what it asks for,
and two workers' limiters keep to the cap while handing slots over between their own requests."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from arena import store
from arena.store import claims, quotas
from arena.store.tables import Job, ProviderSlot, Run

SLOTS = ProviderSlot.__table__


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def _holders(engine, provider: str = "p") -> dict[int, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(SLOTS.c.slot, SLOTS.c.holder).where(SLOTS.c.provider == provider)
        )
        return dict(rows.all())


def test_a_take_gets_at_most_the_slots_it_asks_for_within_the_cap(engine):
    # PostgreSQL ran `slot IN (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED)` as a semi-join that
    # rescanned the subquery for every row: one take held all 16 slots.
    quotas.prepare_limits(engine, "r", {"p": 16, "other": 2})
    assert quotas.take_slots(engine, "r", "p", "w1", 16, 1) == [0]
    assert quotas.take_slots(engine, "r", "p", "w2", 16, 3) == [1, 2, 3]
    assert quotas.take_slots(engine, "r", "p", "w1", 5, 9) == [4]  # a cap of 5: slots 0-4
    assert quotas.take_slots(engine, "r", "p", "w1", 5, 9) == []
    held = _holders(engine)
    assert [held[s] for s in range(6)] == ["w1", "w2", "w2", "w2", "w1", None]
    assert quotas.take_slots(engine, "r", "other", "w1", 2, 1) == [0]  # another provider's own
    quotas.free_slots(engine, "r", "p", "w1", [1])  # not w1's: it stays w2's
    assert _holders(engine)[1] == "w2"
    quotas.free_slots(engine, "r", "p", "w2", [1, 2])
    assert quotas.take_slots(engine, "r", "p", "w3", 16, 1) == [1]


def test_a_claim_takes_at_most_its_limit_in_plan_order(engine):
    jobs = [
        Job(run_id="", challenge="c", task="edit", model="m", provider="p", model_id="m", sample=i)
        for i in range(40)
    ]
    run = store.create_run(engine, Run(id="r1", status="planned", samples=40), jobs)
    first = claims.claim_jobs(engine, run.id, "w1", 5)
    second = claims.claim_jobs(engine, run.id, "w2", 7)
    assert [j.sample for j in first] == [0, 1, 2, 3, 4]
    assert [j.sample for j in second] == [5, 6, 7, 8, 9, 10, 11]
    state = claims.pool_state(engine, run.id)
    assert (state.claimed, state.unclaimed) == (12, 28)


class _SlotStatements:
    """Counts the statements that take or free slots (the engine's own event, no stand-in)."""

    def __init__(self, engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith(("UPDATE provider_slots", "WITH free_slots")):
            self.count += 1


def _run_jobs(engine, limiters, jobs_of: list[int], hold_s: float, cancel: int = 0) -> dict:
    """Run jobs on the limiters (jobs_of[i] on limiter i), each holding its slot hold_s; the
    most slots held at once across them, and each one's peak."""
    held = {"now": 0, "most": 0}

    async def job(limiter) -> None:
        async with limiter.slot():
            held["now"] += 1
            held["most"] = max(held["most"], held["now"])
            try:
                await asyncio.sleep(hold_s)
            finally:
                held["now"] -= 1

    async def main() -> None:
        tasks = [
            asyncio.create_task(job(limiter))
            for limiter, count in zip(limiters, jobs_of, strict=True)
            for _ in range(count)
        ]
        await asyncio.sleep(hold_s)
        for task in tasks[len(tasks) - cancel :]:  # cancelled while waiting for a slot
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return held


def _limiters(engine, executor, cap: int, workers: int = 2) -> list[quotas.SharedLimiter]:
    quotas.prepare_limits(engine, "r", {"p": cap})
    return [
        quotas.SharedLimiter(
            engine, "r", "p", f"w{i}", 10_000.0, cap, executor, workers=lambda: workers
        )
        for i in range(workers)
    ]


def test_two_workers_keep_to_the_cap_and_hand_slots_over_without_transactions(engine):
    statements = _SlotStatements(engine)
    with ThreadPoolExecutor(4) as executor:
        limiters = _limiters(engine, executor, cap=4)
        held = _run_jobs(engine, limiters, [60, 60], hold_s=0.005, cancel=6)
    assert held["most"] == 4  # reached, never passed
    assert all(limiter.peak_in_flight >= 1 for limiter in limiters)
    # Each worker keeps its share (2) between its requests: far fewer takes and frees than jobs.
    assert statements.count < 40
    assert set(_holders(engine).values()) == {None}  # every slot back, cancelled waiters too
    assert all(not limiter._spare and not limiter._wanting for limiter in limiters)


def test_a_worker_takes_the_slots_another_leaves_free_beyond_its_share(engine):
    with ThreadPoolExecutor(4) as executor:
        busy, idle = _limiters(engine, executor, cap=4)
        _run_jobs(engine, [busy, idle], [40, 0], hold_s=0.03)
    assert busy.share() == 2
    assert busy.peak_in_flight >= 3
    assert set(_holders(engine).values()) == {None}
