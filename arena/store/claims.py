"""Workers sharing a run: their leases, the jobs they claim, and what a gone worker gives back.

A worker of run R holds the lease "worker:R:<token>" (leases.py: its heartbeat, the database's
clock, gone at once on its own host when its PID is dead, else after its ttl). It claims pending
jobs in batches:

    WITH free AS (SELECT id FROM jobs WHERE run_id = R AND status = 'pending' AND claimed_by IS NULL
                  ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)
    UPDATE jobs SET claimed_by = <holder> FROM free WHERE jobs.id = free.id RETURNING ...

so two workers never take the same job and neither waits for the other's rows. A claim is valid
while its worker's lease lives; whoever finds a gone worker (reap_workers, asked before every
claim) deletes its lease and, in the same transaction, puts its pending jobs back in the pool and
frees its concurrency slots and budget holds. The final attempt of a job marks it done only while
its claim is the writer's own (writer.py), so a job is never recorded done by two workers.

On SQLite (one writer at a time) FOR UPDATE is not rendered: the same statements run one at a
time, and `arena worker` keeps to one worker per run there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import StoreError
from arena.store.leases import (
    DEFAULT_TTL_S,
    LEASES,
    HeldLease,
    LeaseHolder,
    as_read,
    insert_lease,
    read_holders,
    release_lease,
)
from arena.store.messages import one_line
from arena.store.tables import BudgetHold, Job, ProviderSlot

log = logging.getLogger("arena.store")

JOBS = Job.__table__
SLOTS = ProviderSlot.__table__
HOLDS = BudgetHold.__table__


def worker_prefix(run_id: str) -> str:
    return f"worker:{run_id}:"


def new_worker_lease(run_id: str, ttl_s: float = DEFAULT_TTL_S) -> HeldLease:
    """A worker's lease for `run_id`, named by its holder's random token (the name must fit 200)."""
    held = HeldLease.new(worker_prefix(run_id), ttl_s)
    held.name = worker_prefix(run_id) + held.holder.rsplit(":", 1)[1]
    return held


def join_run(engine: sa.Engine, run_id: str, ttl_s: float = DEFAULT_TTL_S) -> HeldLease:
    """Insert a new worker's lease for the run (start its Heartbeat next)."""
    held = new_worker_lease(run_id, ttl_s)
    try:
        with engine.begin() as conn:
            insert_lease(engine, conn, held)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not join run {run_id}: {one_line(exc)}") from None
    return held


def worker_holders(engine: sa.Engine, run_id: str) -> list[LeaseHolder]:
    """Every worker lease of the run, with its heartbeat's age by the database's clock."""
    try:
        return read_holders(
            engine, LEASES.c.name.startswith(worker_prefix(run_id), autoescape=True)
        )
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the workers of run {run_id}: {one_line(exc)}") from None


def live_workers(engine: sa.Engine, run_id: str) -> list[LeaseHolder]:
    return [holder for holder in worker_holders(engine, run_id) if not holder.gone()]


def reap_workers(engine: sa.Engine, run_id: str) -> list[LeaseHolder]:
    """Remove the leases of the run's gone workers and give back what they held; returns them.

    The lease row is deleted only if it still has the same holder (and, when it expired by its
    ttl, is still expired), so a worker that renews at the last moment keeps everything; what it
    held is freed in the same transaction as its lease's removal.
    """
    reaped = []
    for holder in worker_holders(engine, run_id):
        if not holder.gone():
            continue
        try:
            with engine.begin() as conn:
                if conn.execute(LEASES.delete().where(as_read(engine, holder))).rowcount != 1:
                    continue  # renewed, or reaped by someone else meanwhile
                _give_back(conn, holder.holder)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not free a gone worker's jobs: {one_line(exc)}") from None
        log.info(
            "arena: worker %s of run %s is gone: its jobs are back in the pool",
            holder.holder,
            run_id,
        )
        reaped.append(holder)
    return reaped


def _give_back(conn: sa.Connection, holder: str) -> None:
    conn.execute(
        JOBS.update()
        .where(JOBS.c.claimed_by == holder, JOBS.c.status == "pending")
        .values(claimed_by=None)
    )
    conn.execute(SLOTS.update().where(SLOTS.c.holder == holder).values(holder=None))
    conn.execute(HOLDS.delete().where(HOLDS.c.holder == holder))


def leave_run(engine: sa.Engine, held: HeldLease) -> None:
    """A worker's clean exit: its unfinished jobs back in the pool, its slots and holds freed, its
    lease released. A store that fails here only leaves them to the lease's expiry."""
    try:
        with engine.begin() as conn:
            _give_back(conn, held.holder)
    except SQLAlchemyError as exc:
        log.info(
            "arena: could not give back the jobs of %s (%s): they return when its lease expires",
            held.holder,
            one_line(exc),
        )
    release_lease(engine, held)


def claim_jobs(engine: sa.Engine, run_id: str, holder: str, limit: int) -> list[Job]:
    """Up to `limit` pending, unclaimed jobs of the run, now claimed by `holder`, in plan order."""
    if limit <= 0:
        return []
    free = (
        sa.select(JOBS.c.id)
        .where(JOBS.c.run_id == run_id, JOBS.c.status == "pending", JOBS.c.claimed_by.is_(None))
        .order_by(JOBS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("free_jobs")
    )
    try:
        with engine.begin() as conn:
            rows = conn.execute(
                JOBS.update()
                .where(JOBS.c.id == free.c.id)  # a CTE: see quotas.take_slots
                .values(claimed_by=holder)
                .returning(*JOBS.c)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not claim jobs of run {run_id}: {one_line(exc)}") from None
    return sorted((Job(**row._mapping) for row in rows), key=lambda job: job.id)


def claimed_jobs(engine: sa.Engine, run_id: str, holder: str) -> list[Job]:
    """The run's pending jobs claimed by `holder`, in plan order."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(*JOBS.c)
                .where(
                    JOBS.c.run_id == run_id,
                    JOBS.c.status == "pending",
                    JOBS.c.claimed_by == holder,
                )
                .order_by(JOBS.c.id)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the claims of run {run_id}: {one_line(exc)}") from None
    return [Job(**row._mapping) for row in rows]


def drop_claims(engine: sa.Engine, holder: str, job_ids: list[int]) -> None:
    """Put claimed jobs back in the pool (a worker that will not send them: budget, stop)."""
    if not job_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            JOBS.update()
            .where(JOBS.c.id.in_(job_ids), JOBS.c.claimed_by == holder, JOBS.c.status == "pending")
            .values(claimed_by=None)
        )


@dataclass(frozen=True)
class PoolState:
    """A run's jobs as the workers see them."""

    unclaimed: int  # pending, in the pool
    claimed: int  # pending, claimed by a worker
    done: int

    @property
    def pending(self) -> int:
        return self.unclaimed + self.claimed


def pool_state(engine: sa.Engine, run_id: str) -> PoolState:
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(JOBS.c.status, JOBS.c.claimed_by.is_(None), sa.func.count())
                .where(JOBS.c.run_id == run_id)
                .group_by(JOBS.c.status, JOBS.c.claimed_by.is_(None))
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not count the jobs of run {run_id}: {one_line(exc)}") from None
    unclaimed = sum(n for status, free, n in rows if status == "pending" and free)
    claimed = sum(n for status, free, n in rows if status == "pending" and not free)
    done = sum(n for status, _, n in rows if status == "done")
    return PoolState(unclaimed, claimed, done)
