"""Workers sharing a run, on SQLite and PostgreSQL: claims never overlap, a gone worker's jobs come
back, the shared slots / schedule / budget hold across holders, and a final attempt counts once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from support.store import put_lease

from arena import store
from arena.store import claims, quotas
from arena.store.tables import Attempt, BudgetHold, Job, Run

OTHER_HOST = "elsewhere.example"


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def _run(engine, jobs: int, run_id: str = "r1", max_cost_usd: float | None = None) -> list[Job]:
    store.create_run(
        engine,
        Run(id=run_id, max_cost_usd=max_cost_usd),
        [
            Job(
                challenge=f"c{n}",
                task="text-to-image",
                model="m",
                provider="p",
                model_id="m",
                expected_cost_usd=0.3,
            )
            for n in range(jobs)
        ],
    )
    return store.pending_jobs(engine, run_id)


def _attempt(job_id: int, number: int, *, cost: float = 0.3, started_at=None, ok: bool = True):
    return SimpleNamespace(
        run_id="r1",
        job_id=job_id,
        attempt=number,
        warmup=False,
        challenge="c",
        task="text-to-image",
        category="",
        model="m",
        provider="p",
        started_at=started_at or datetime.now(UTC),
        ok=ok,
        failure_class=None if ok else "server_error",
        cost_usd=cost,
        image_sha256=None,
    )


def _claimed_by(engine) -> dict[int, str | None]:
    jobs = Job.__table__
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(jobs.c.id, jobs.c.claimed_by)).all())


def test_concurrent_claims_never_overlap_and_cover_every_job(engine):
    _run(engine, 120)
    taken: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    errors = []

    def work(name: str) -> None:
        try:
            while batch := claims.claim_jobs(engine, "r1", name, 7):
                taken[name] += [job.id for job in batch]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    every = [job_id for ids in taken.values() for job_id in ids]
    assert len(every) == len(set(every)) == 120  # each job once, none left
    owners = _claimed_by(engine)
    assert all(owners[job_id] == name for name, ids in taken.items() for job_id in ids)
    assert claims.claim_jobs(engine, "r1", "d", 5) == []
    state = claims.pool_state(engine, "r1")
    assert (state.unclaimed, state.claimed, state.done) == (0, 120, 0)


def test_claims_come_in_plan_order(engine):
    jobs = _run(engine, 10)
    first = claims.claim_jobs(engine, "r1", "a", 4)
    second = claims.claim_jobs(engine, "r1", "b", 4)
    assert [j.id for j in first] == [j.id for j in jobs[:4]]
    assert [j.id for j in second] == [j.id for j in jobs[4:8]]


def test_a_gone_worker_gives_back_its_jobs_slots_and_holds(engine):
    _run(engine, 6)
    quotas.prepare_limits(engine, "r1", {"p": 2})
    expired = f"{OTHER_HOST}:4242:deadbeefdeadbeef"
    put_lease(
        engine,
        claims.worker_prefix("r1") + "deadbeefdeadbeef",
        host=OTHER_HOST,
        pid=4242,
        heartbeat_age_s=60,
        ttl_s=30,
        token="deadbeefdeadbeef",
    )
    live = claims.join_run(engine, "r1", ttl_s=30)
    lost = claims.claim_jobs(engine, "r1", expired, 3)
    kept = claims.claim_jobs(engine, "r1", live.holder, 3)
    assert quotas.take_slots(engine, "r1", "p", expired, 2, 1) == [0]
    assert quotas.hold_budget(engine, "r1", lost[0].id, expired, 0.3, 10.0)

    reaped = claims.reap_workers(engine, "r1")

    assert [h.holder for h in reaped] == [expired]
    owners = _claimed_by(engine)
    assert all(owners[j.id] is None for j in lost)
    assert all(owners[j.id] == live.holder for j in kept)
    assert quotas.take_slots(engine, "r1", "p", live.holder, 2, 2) == [0, 1]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(BudgetHold)).scalar() == 0
    assert [h.holder for h in claims.live_workers(engine, "r1")] == [live.holder]
    assert claims.reap_workers(engine, "r1") == []  # the live one stays


def test_a_worker_whose_pid_died_on_this_host_is_reaped_at_once(engine):
    import subprocess
    import sys

    _run(engine, 2)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    held = claims.new_worker_lease("r1")
    host = held.host
    put_lease(
        engine,
        claims.worker_prefix("r1") + "0123456789abcdef",
        host=host,
        pid=proc.pid,
        heartbeat_age_s=0,
        ttl_s=30,
        token="0123456789abcdef",
    )
    dead = f"{host}:{proc.pid}:0123456789abcdef"
    claims.claim_jobs(engine, "r1", dead, 2)
    assert [h.holder for h in claims.reap_workers(engine, "r1")] == [dead]
    assert claims.pool_state(engine, "r1").unclaimed == 2


def test_leave_run_puts_unfinished_jobs_back_and_releases_the_lease(engine):
    _run(engine, 4)
    held = claims.join_run(engine, "r1")
    claims.claim_jobs(engine, "r1", held.holder, 4)
    claims.leave_run(engine, held)
    assert claims.pool_state(engine, "r1").unclaimed == 4
    assert claims.worker_holders(engine, "r1") == []


def test_slots_never_exceed_the_cap_across_holders(engine):
    _run(engine, 1)
    quotas.prepare_limits(engine, "r1", {"p": 3})
    holding = []
    peak = []
    lock = threading.Lock()

    def work(name: str) -> None:
        for _ in range(25):
            got = quotas.take_slots(engine, "r1", "p", name, 3, 2)
            with lock:
                holding.extend(got)
                peak.append(len(holding))
                assert len(set(holding)) == len(holding)  # no slot held twice
            time.sleep(0.001)
            with lock:
                for slot in got:
                    holding.remove(slot)
            quotas.free_slots(engine, "r1", "p", name, got)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(peak) <= 3
    assert max(peak) >= 2  # the slots were really contended for
    # A holder frees only its own slots.
    mine = quotas.take_slots(engine, "r1", "p", "me", 3, 3)
    quotas.free_slots(engine, "r1", "p", "other", mine)
    assert quotas.take_slots(engine, "r1", "p", "other", 3, 1) == []
    # A smaller cap (another worker's config) uses fewer of the rows.
    quotas.free_slots(engine, "r1", "p", "me", mine)
    assert quotas.take_slots(engine, "r1", "p", "me", 1, 3) == [0]


def test_turns_are_spaced_by_the_interval_across_callers(engine):
    _run(engine, 1)
    quotas.prepare_limits(engine, "r1", {"p": 1})
    interval_s = 0.05
    delays: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            delay_s = quotas.take_turn(engine, "r1", "p", interval_s)
            with lock:
                delays.append(delay_s)

    started_s = time.time()  # the database runs on this host: one wall clock
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        next_at_s = conn.execute(sa.select(quotas.PACES.c.next_at_s)).scalar_one()
    assert len(delays) == 15 and time.time() - started_s < 15 * interval_s
    # Every turn, whoever took it, moved the schedule on by exactly one interval from the first:
    # no two callers were handed the same moment.
    assert next_at_s - started_s == pytest.approx(15 * interval_s, abs=0.04)
    # Nobody is told to wait past its place in the queue (the 15th turn is 14 intervals on), and
    # the waits grow with the queue rather than all being due at once.
    assert max(delays) <= 14 * interval_s + 0.01
    assert sorted(delays)[0] < interval_s and sorted(delays)[-2] > 10 * interval_s


def test_budget_holds_add_up_across_holders(engine):
    jobs = _run(engine, 10, max_cost_usd=1.0)
    granted = []

    def work(name: str, mine: list[Job]) -> None:
        for job in mine:
            if quotas.hold_budget(engine, "r1", job.id, name, 0.3, 1.0):
                granted.append(job.id)

    threads = [
        threading.Thread(target=work, args=("a", jobs[:5])),
        threading.Thread(target=work, args=("b", jobs[5:])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 3  # 3 × 0.3 fits in 1.0, a fourth would not
    # A final attempt's write spends the hold: its cost counts instead (0.1 here), freeing room.
    first = granted[0]
    holder = "a" if first in [j.id for j in jobs[:5]] else "b"
    with engine.begin() as conn:
        conn.execute(
            Job.__table__.update().where(Job.__table__.c.id == first).values(claimed_by=holder)
        )
    store.record_results(engine, [(_attempt(first, 1, cost=0.1), None, True)], claimed_by=holder)
    with engine.connect() as conn:
        holds = conn.execute(sa.select(BudgetHold.__table__.c.job_id)).scalars().all()
    assert first not in holds and len(holds) == 2
    spare = next(j.id for j in jobs if j.id not in granted)
    assert quotas.hold_budget(engine, "r1", spare, "a", 0.3, 1.0)  # 0.1 + 0.6 + 0.3 <= 1.0
    assert not quotas.hold_budget(engine, "r1", jobs[-1].id, "a", 0.3, 1.0)


def test_a_final_attempt_marks_its_job_done_only_under_its_own_claim(engine):
    jobs = _run(engine, 2)
    a, b = jobs
    claims.claim_jobs(engine, "r1", "old", 2)
    with engine.begin() as conn:  # job a was reaped from "old" and claimed again by "new"
        conn.execute(
            Job.__table__.update().where(Job.__table__.c.id == a.id).values(claimed_by="new")
        )
    store.record_results(
        engine,
        [(_attempt(a.id, 1), None, True), (_attempt(b.id, 1), None, True)],
        claimed_by="old",
    )
    done = {job.id: job.status for job in store.pending_jobs(engine, "r1")}
    assert done == {a.id: "pending"}  # b is done; a waits for its new owner
    store.record_results(engine, [(_attempt(a.id, 2), None, True)], claimed_by="new")
    assert store.pending_jobs(engine, "r1") == []


def test_a_late_attempt_under_a_taken_number_is_kept_under_the_next(engine):
    (job,) = _run(engine, 1)
    sent = datetime.now(UTC)
    store.record_results(engine, [(_attempt(job.id, 1, started_at=sent), None, True)])
    late = _attempt(job.id, 1, started_at=sent - timedelta(seconds=5), ok=False)
    store.record_results(engine, [(late, None, True)])
    # The same attempt replayed is not stored twice.
    store.record_results(engine, [(_attempt(job.id, 1, started_at=sent), None, True)])
    attempts = Attempt.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(attempts.c.attempt, attempts.c.ok).order_by(attempts.c.attempt)
        ).all()
        job_row = conn.execute(sa.select(Job.__table__).where(Job.__table__.c.id == job.id)).one()
    assert [tuple(r) for r in rows] == [(1, True), (2, False)]
    assert (job_row.status, job_row.outcome, job_row.attempts) == ("done", "success", 1)
