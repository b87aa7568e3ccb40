"""A batch taken with FOR UPDATE SKIP LOCKED is never larger than asked: a provider's concurrency
slots one request at a time, a run's jobs n at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from arena import store
from arena.store import claims, quotas
from arena.store.tables import Job, ProviderSlot, Run


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


@pytest.mark.parametrize("jobs", [2, 5, 40, 400])
def test_a_claim_takes_at_most_its_limit_of_jobs_in_plan_order(engine, jobs):
    planned = [
        Job(
            run_id="",
            challenge="c",
            task="text-to-image",
            model="m",
            provider="p",
            model_id="m",
            sample=i,
        )
        for i in range(jobs)
    ]
    store.create_run(engine, Run(id="r1", status="planned", config_source="t"), planned)
    first = claims.claim_jobs(engine, "r1", "a", 3)
    second = claims.claim_jobs(engine, "r1", "b", 3)
    assert [job.sample for job in first] == list(range(min(3, jobs)))
    assert [job.sample for job in second] == list(range(3, min(6, jobs)))
    state = claims.pool_state(engine, "r1")
    assert (state.claimed, state.unclaimed) == (min(6, jobs), max(0, jobs - 6))


def test_a_slot_take_tried_again_finds_the_slot_it_took_and_a_worker_leaving_frees_it(engine):
    quotas.prepare_limits(engine, "r1", {"p": 3})
    held = claims.join_run(engine, "r1", ttl_s=30)
    first, second = claims.slot_tag(held.holder, 1), claims.slot_tag(held.holder, 2)
    # The same take again (its reply lost on the way): the same slot, not a second one.
    assert quotas.take_slot(engine, "r1", "p", first, 3) == 0
    assert quotas.take_slot(engine, "r1", "p", first, 3) == 0
    assert quotas.take_slot(engine, "r1", "p", second, 3) == 1
    assert (_held(engine, first), _held(engine, second)) == ([0], [1])
    claims.leave_run(engine, held)  # its tagged slots go with it
    assert _held(engine, first) == _held(engine, second) == []
    assert quotas.take_slots(engine, "r1", "p", "other", 3, 3) == [0, 1, 2]
