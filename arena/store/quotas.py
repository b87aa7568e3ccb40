"""The limits every worker of a run shares through PostgreSQL: each provider's concurrency slots,
its send schedule, and the run's budget.

- Concurrency: a provider's max_concurrency is that many rows of provider_slots; a request is sent
  only while its worker holds one (taken with FOR UPDATE SKIP LOCKED, freed after the reply). A
  gone worker's slots are freed with its lease (claims.reap_workers). Each take writes the
  worker's holder tagged with the take's number, so a take tried again after a lost reply finds
  the slot it already took.
- Rate: one provider_paces row per provider holds the earliest moment (epoch seconds by the
  database's clock) of the next request of any worker. Taking a turn is one statement,
      UPDATE provider_paces SET next_at_s = GREATEST(next_at_s, now) + 1/rate ... RETURNING
  which row-locks, so turns are handed out one at a time, each 1/rate after the one before; the
  worker sleeps until its turn, measured against the database's now returned with it.
- Budget: a job holds its expected cost from before its first request until its final attempt is
  saved (writer.py deletes the hold in that transaction); a new hold is taken only while the costs
  saved plus every hold plus its own stay within --max-cost, checked under the run row's lock.

SharedLimiter is the harness's limiter on top of them: a local FIFO semaphore first (so no more of
this worker's requests wait than the cap), then a global slot, then the schedule; the database is
reached from a small thread pool, never from the event loop that times requests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import StoreError
from arena.store.claims import locked_batch, reap_workers, slot_tag
from arena.store.messages import one_line
from arena.store.tables import Attempt, BudgetHold, ProviderPace, ProviderSlot, Run

SLOTS = ProviderSlot.__table__
PACES = ProviderPace.__table__
HOLDS = BudgetHold.__table__
_FIRST_POLL_S = 0.002
_LONGEST_POLL_S = 0.05  # a slot freed by another worker is seen within this


def _insert(engine: sa.Engine, table: sa.Table):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def prepare_limits(engine: sa.Engine, run_id: str, caps: dict[str, int]) -> None:
    """The slot rows (0 .. cap-1) and the schedule row of each provider, for whoever is first."""
    try:
        with engine.begin() as conn:
            for provider, cap in sorted(caps.items()):
                conn.execute(
                    _insert(engine, SLOTS),
                    [{"run_id": run_id, "provider": provider, "slot": s} for s in range(cap)],
                )
                conn.execute(
                    _insert(engine, PACES),
                    [{"run_id": run_id, "provider": provider, "next_at_s": 0.0}],
                )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"could not set up the shared limits of run {run_id}: {one_line(exc)}"
        ) from None


def take_slots(
    engine: sa.Engine, run_id: str, provider: str, holder: str, cap: int, want: int
) -> list[int]:
    """Up to `want` free slots of the provider (of the first `cap`), now held by `holder`."""
    with engine.begin() as conn:
        return _take_free(engine, conn, run_id, provider, holder, cap, want)


def take_slot(engine: sa.Engine, run_id: str, provider: str, tag: str, cap: int) -> int | None:
    """The slot held under `tag` (claims.slot_tag: one request's take), else a free slot of the
    first `cap`, now held under it; None when none is free.

    Tried again after a failure, it finds the slot the failed try took if that try committed and
    only its reply was lost (a connection cut at the commit), instead of taking a second one and
    leaving the first held until the worker leaves.
    """
    with engine.begin() as conn:
        held = conn.execute(
            sa.select(SLOTS.c.slot).where(
                SLOTS.c.run_id == run_id, SLOTS.c.provider == provider, SLOTS.c.holder == tag
            )
        ).first()
        if held is not None:
            return held[0]
        taken = _take_free(engine, conn, run_id, provider, tag, cap, 1)
    return taken[0] if taken else None


def _take_free(
    engine: sa.Engine,
    conn: sa.Connection,
    run_id: str,
    provider: str,
    holder: str,
    cap: int,
    want: int,
) -> list[int]:
    free = (
        sa.select(SLOTS.c.slot)
        .where(
            SLOTS.c.run_id == run_id,
            SLOTS.c.provider == provider,
            SLOTS.c.slot < cap,
            SLOTS.c.holder.is_(None),
        )
        .order_by(SLOTS.c.slot)
        .limit(want)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        SLOTS.update()
        .where(
            SLOTS.c.run_id == run_id,
            SLOTS.c.provider == provider,
            SLOTS.c.slot.in_(locked_batch(engine, free, "free_slots")),
        )
        .values(holder=holder)
        .returning(SLOTS.c.slot)
    ).all()
    return [row[0] for row in rows]


def free_slots(
    engine: sa.Engine, run_id: str, provider: str, holder: str, slots: list[int]
) -> None:
    with engine.begin() as conn:
        conn.execute(
            SLOTS.update()
            .where(
                SLOTS.c.run_id == run_id,
                SLOTS.c.provider == provider,
                SLOTS.c.slot.in_(slots),
                SLOTS.c.holder == holder,
            )
            .values(holder=None)
        )


def _epoch_now(engine: sa.Engine):
    if engine.dialect.name == "sqlite":
        return (sa.func.julianday("now") - 2440587.5) * 86400.0
    return sa.extract("epoch", sa.func.clock_timestamp())


def take_turn(engine: sa.Engine, run_id: str, provider: str, interval_s: float) -> float:
    """The provider's next send turn: seconds from the database's now until it (0 when due)."""
    now = _epoch_now(engine)
    start = sa.func.greatest if engine.dialect.name == "postgresql" else sa.func.max
    with engine.begin() as conn:
        row = conn.execute(
            PACES.update()
            .where(PACES.c.run_id == run_id, PACES.c.provider == provider)
            .values(next_at_s=start(PACES.c.next_at_s, now) + interval_s)
            .returning(PACES.c.next_at_s - interval_s - now)
        ).first()
    return max(0.0, float(row[0])) if row is not None else 0.0


def hold_budget(
    engine: sa.Engine,
    run_id: str,
    job_id: int,
    holder: str,
    expected_usd: float,
    max_cost_usd: float,
) -> bool:
    """Hold a job's expected cost against the run's budget; False (nothing held) when it would pass."""
    runs, attempts = Run.__table__, Attempt.__table__
    with engine.begin() as conn:
        # The run row's lock makes every worker's check-and-hold one at a time.
        conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update()).first()
        spent = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(attempts.c.cost_usd), 0.0)).where(
                attempts.c.run_id == run_id
            )
        ).scalar_one()
        held = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(HOLDS.c.expected_usd), 0.0)).where(
                HOLDS.c.run_id == run_id, HOLDS.c.job_id != job_id
            )
        ).scalar_one()
        if float(spent) + float(held) + expected_usd > max_cost_usd + 1e-12:
            return False
        conn.execute(HOLDS.delete().where(HOLDS.c.job_id == job_id))
        conn.execute(
            HOLDS.insert().values(
                job_id=job_id, run_id=run_id, holder=holder, expected_usd=expected_usd
            )
        )
    return True


def drop_budget_hold(engine: sa.Engine, job_id: int, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(HOLDS.delete().where(HOLDS.c.job_id == job_id, HOLDS.c.holder == holder))


class SharedLimiter:
    """A provider's limits for one worker of a run, global across workers (see the module's text).

    `async with limiter.slot():` holds a local place and a global slot; `await limiter.pace()`
    waits for the provider's next turn and returns the wait in ms (limiter_wait_ms). The database
    calls run on `executor`; a call that fails raises StoreError, which the harness records as
    the job not being sent.
    """

    def __init__(
        self,
        engine: sa.Engine,
        run_id: str,
        provider: str,
        holder: str,
        rate_per_s: float,
        max_concurrency: int,
        executor: Executor,
        stop_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.engine, self.run_id, self.provider, self.holder = engine, run_id, provider, holder
        self.rate_per_s = rate_per_s
        self.max_concurrency = max_concurrency
        self._executor = executor
        self._stop_reason = stop_reason
        self._local = asyncio.Semaphore(max_concurrency)
        self._takes = itertools.count(1)
        self.in_flight = 0
        self.peak_in_flight = 0

    async def _call(self, function, *args):
        return await call_store(self._executor, self._stop_reason, function, *args)

    async def _take_slot(self, tag: str) -> int:
        poll_s = _FIRST_POLL_S
        while True:
            taken = await self._call(
                take_slot, self.engine, self.run_id, self.provider, tag, self.max_concurrency
            )
            if taken is not None:
                return taken
            await asyncio.sleep(poll_s)
            poll_s = min(poll_s * 2, _LONGEST_POLL_S)

    @asynccontextmanager
    async def slot(self):
        async with self._local:
            tag = slot_tag(self.holder, next(self._takes))
            slot = await self._take_slot(tag)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
                # Shielded: a cancelled request must still give its slot back.
                await asyncio.shield(
                    self._call(free_slots, self.engine, self.run_id, self.provider, tag, [slot])
                )

    async def pace(self) -> float:
        start = time.perf_counter_ns()
        delay_s = await self._call(
            take_turn, self.engine, self.run_id, self.provider, 1.0 / self.rate_per_s
        )
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return (time.perf_counter_ns() - start) / 1e6


async def call_store(executor: Executor, stop_reason: Callable[[], str | None], function, *args):
    """`function(*args)` on the executor; a store that fails is tried again with backoff until
    `stop_reason` gives a reason (the worker's lease is at risk), then StoreError says why."""
    loop = asyncio.get_running_loop()
    wait_s = 0.05
    while True:
        try:
            return await loop.run_in_executor(executor, function, *args)
        except (SQLAlchemyError, StoreError) as exc:
            problem = one_line(exc)
        reason = stop_reason()
        if reason:
            raise StoreError(f"the shared limits could not be reached ({problem}); {reason}")
        await asyncio.sleep(wait_s)
        wait_s = min(wait_s * 2, 1.0)


class SharedBudget:
    """The run's --max-cost across workers: hold(job) before a job's first request, release(job)
    when it ends without a final attempt (a final attempt's hold goes with its write)."""

    def __init__(
        self,
        engine: sa.Engine,
        run_id: str,
        holder: str,
        max_cost_usd: float,
        executor: Executor,
        stop_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.engine, self.run_id, self.holder = engine, run_id, holder
        self.max_cost_usd = max_cost_usd
        self._executor = executor
        self._stop_reason = stop_reason

    async def hold(self, job) -> bool:
        return await call_store(self._executor, self._stop_reason, self._hold, job)

    def _hold(self, job) -> bool:
        args = (self.engine, self.run_id, job.id, self.holder, job.expected_cost_usd or 0.0)
        if hold_budget(*args, self.max_cost_usd):
            return True
        # Refused: what fills the budget may be the holds of a worker that is gone but not yet
        # reaped (that happens as workers claim): free them and ask once more, rather than stop
        # this worker's run for a budget nobody will spend.
        return bool(reap_workers(self.engine, self.run_id)) and hold_budget(
            *args, self.max_cost_usd
        )

    async def release(self, job) -> None:
        await call_store(
            self._executor, self._stop_reason, drop_budget_hold, self.engine, job.id, self.holder
        )
