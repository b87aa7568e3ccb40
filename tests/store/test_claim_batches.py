"""What workers take from a shared run, on SQLite and PostgreSQL: a batch taken with FOR UPDATE SKIP
LOCKED is never larger than asked (a provider's concurrency slots, a run's jobs); a take tried
again finds what it took; a gone worker's budget holds do not refuse the living."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from support.store import put_lease

from arena import store
from arena.store import claims, leases, quotas
from arena.store.tables import BudgetHold, Job, ProviderSlot, Run


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def _held(engine, holder: str) -> list[int]:
    slots = ProviderSlot.__table__
    with engine.connect() as conn:
        return sorted(
            conn.execute(sa.select(slots.c.slot).where(slots.c.holder == holder)).scalars()
        )


@pytest.mark.parametrize("cap", [1, 4, 16])
def test_taking_one_slot_holds_one_and_the_others_stay_free_for_other_workers(engine, cap):
    quotas.prepare_limits(engine, "r1", {"p": cap})
    taken = [quotas.take_slots(engine, "r1", "p", f"w{i}", cap, 1) for i in range(cap)]
    # One each: PostgreSQL's nested-loop plan of a plain IN (subquery) once gave the first taker
    # every slot, leaving one request in flight for all the workers of a run.
    assert taken == [[slot] for slot in range(cap)]
    assert [_held(engine, f"w{i}") for i in range(cap)] == [[slot] for slot in range(cap)]
    assert quotas.take_slots(engine, "r1", "p", "late", cap, 1) == []
    quotas.free_slots(engine, "r1", "p", "w0", [0])
    assert quotas.take_slots(engine, "r1", "p", "late", cap, 2) == [0]


def test_a_slot_batch_takes_as_many_as_asked_within_the_cap(engine):
    quotas.prepare_limits(engine, "r1", {"p": 8})
    assert quotas.take_slots(engine, "r1", "p", "a", 6, 3) == [0, 1, 2]
    assert quotas.take_slots(engine, "r1", "p", "b", 6, 5) == [3, 4, 5]  # slots 6, 7: above cap 6


def _plan(engine, jobs: int, **run) -> list[Job]:
    planned = [
        Job(
            run_id="",
            challenge="c",
            task="text-to-image",
            model="m",
            provider="p",
            model_id="m",
            sample=i,
            expected_cost_usd=0.01,
        )
        for i in range(jobs)
    ]
    store.create_run(engine, Run(id="r1", status="planned", config_source="t", **run), planned)
    jobs_table = Job.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs_table).order_by(jobs_table.c.id)).all()
    return [Job(**row._mapping) for row in rows]


@pytest.mark.parametrize("jobs", [2, 5, 40, 400])
def test_a_claim_takes_at_most_its_limit_of_jobs_in_plan_order(engine, jobs):
    _plan(engine, jobs)
    first = claims.claim_jobs(engine, "r1", "a", 3)
    second = claims.claim_jobs(engine, "r1", "b", 3)
    assert [job.sample for job in first] == list(range(min(3, jobs)))
    assert [job.sample for job in second] == list(range(3, min(6, jobs)))
    state = claims.pool_state(engine, "r1")
    assert (state.claimed, state.unclaimed) == (min(6, jobs), max(0, jobs - 6))


def test_a_slot_take_tried_again_finds_the_slot_it_took_and_a_worker_leaving_frees_it(engine):
    quotas.prepare_limits(engine, "r1", {"p": 3})
    held = claims.join_run(engine, "r1", ttl_s=30)
    mine = held.holder
    assert quotas.take_slots(engine, "r1", "p", mine, 3, 1) == [0]
    # That take's reply was lost: the worker knows of no slot, and its next take (knowing it may
    # hold one unknown) gets that same slot back rather than a second one.
    assert quotas.take_slots(engine, "r1", "p", mine, 3, 1, known=frozenset()) == [0]
    assert _held(engine, mine) == [0]
    # Knowing slot 0, a take after a failure finds nothing lost and takes a free one.
    assert quotas.take_slots(engine, "r1", "p", mine, 3, 1, known=frozenset({0})) == [1]
    assert _held(engine, mine) == [0, 1]
    claims.leave_run(engine, held)  # its slots go with it
    assert _held(engine, mine) == []
    assert quotas.take_slots(engine, "r1", "p", "other", 3, 3) == [0, 1, 2]


def test_a_budget_hold_refused_for_a_gone_workers_holds_frees_them_and_is_taken(engine):
    first, second, third = _plan(engine, 3, max_cost_usd=0.02)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = "deadbeefdeadbeef"
    put_lease(
        engine,
        f"worker:r1:{token}",
        host=leases.this_host(),
        pid=dead.pid,
        heartbeat_age_s=0,
        token=token,
    )
    gone = f"{leases.this_host()}:{dead.pid}:{token}"
    assert quotas.hold_budget(engine, "r1", first.id, gone, 0.01, 0.02)
    assert quotas.hold_budget(engine, "r1", second.id, gone, 0.01, 0.02)
    assert not quotas.hold_budget(engine, "r1", third.id, "me", 0.01, 0.02)  # the budget is full

    async def hold() -> bool:
        with ThreadPoolExecutor(max_workers=1) as executor:
            return await quotas.SharedBudget(engine, "r1", "me", 0.02, executor).hold(third)

    assert asyncio.run(hold())
    with engine.connect() as conn:
        holds = conn.execute(sa.select(BudgetHold.__table__.c.holder)).scalars().all()
    assert holds == ["me"]
