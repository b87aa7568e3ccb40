"""The limits every worker of a run shares through PostgreSQL: each provider's concurrency slots,
its send schedule, and the run's budget.

- Concurrency: a provider's max_concurrency is that many rows of provider_slots; a request is sent
  only while its worker holds one (taken with FOR UPDATE SKIP LOCKED, freed after the reply). A
  gone worker's slots are freed with its lease (claims.reap_workers). After a take failed (a
  connection cut as it committed: the slot may be held with nobody knowing), the next take first
  looks for a slot the worker holds beyond the ones it knows of.
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
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import StoreError
from arena.store.claims import reap_workers
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


@functools.cache
def _statements(dialect: str) -> SimpleNamespace:
    """The limiter's statements, built once per dialect with their values bound at execution:
    building and hashing a statement anew took as much of the worker's CPU as running it."""
    run, provider = sa.bindparam("p_run"), sa.bindparam("p_provider")
    mine = sa.and_(SLOTS.c.run_id == run, SLOTS.c.provider == provider)
    free = (
        sa.select(SLOTS.c.slot)
        .where(mine, SLOTS.c.slot < sa.bindparam("p_cap"), SLOTS.c.holder.is_(None))
        .order_by(SLOTS.c.slot)
        .limit(sa.bindparam("p_want"))
        .with_for_update(skip_locked=True)
        .cte("free_slots")
    )
    if dialect == "sqlite":
        now = (sa.func.julianday("now") - 2440587.5) * 86400.0
        start = sa.func.max
    else:
        now = sa.extract("epoch", sa.func.clock_timestamp())
        start = sa.func.greatest
    interval = sa.bindparam("p_interval_s", type_=sa.Float)
    return SimpleNamespace(
        # A CTE, not `slot IN (subquery)`: PostgreSQL may run such a subquery once per outer
        # row, and with LIMIT and SKIP LOCKED each run picks rows of its own (measured: 2 slots
        # for 1).
        take_slots=SLOTS.update()
        .where(mine, SLOTS.c.slot == free.c.slot)
        .values(holder=sa.bindparam("p_holder"))
        .returning(SLOTS.c.slot),
        free_slots=SLOTS.update()
        .where(
            mine,
            SLOTS.c.slot.in_(sa.bindparam("p_slots", expanding=True)),
            SLOTS.c.holder == sa.bindparam("p_holder"),
        )
        .values(holder=None),
        take_turn=PACES.update()
        .where(PACES.c.run_id == run, PACES.c.provider == provider)
        .values(next_at_s=start(PACES.c.next_at_s, now) + interval)
        .returning(PACES.c.next_at_s - interval - now),
    )


def take_slots(
    engine: sa.Engine,
    run_id: str,
    provider: str,
    holder: str,
    cap: int,
    want: int,
    known: frozenset[int] | None = None,
) -> list[int]:
    """Up to `want` free slots of the provider (of the first `cap`), now held by `holder`.

    `known`, after a take failed: the slots the holder knows it holds. One it holds beyond them
    (the failed take committed and only its reply was lost) comes back first, instead of a second
    slot being taken while the first stays held until the worker leaves.
    """
    values = {"p_run": run_id, "p_provider": provider, "p_cap": cap, "p_want": want}
    with engine.begin() as conn:
        if known is not None:
            lost = conn.execute(
                sa.select(SLOTS.c.slot)
                .where(
                    SLOTS.c.run_id == run_id,
                    SLOTS.c.provider == provider,
                    SLOTS.c.holder == holder,
                    SLOTS.c.slot.not_in(sorted(known)),
                )
                .order_by(SLOTS.c.slot)
                .limit(want)
            ).all()
            if lost:
                return [row[0] for row in lost]
        rows = conn.execute(
            _statements(engine.dialect.name).take_slots, {**values, "p_holder": holder}
        ).all()
    return [row[0] for row in rows]


def free_slots(
    engine: sa.Engine, run_id: str, provider: str, holder: str, slots: list[int]
) -> None:
    values = {"p_run": run_id, "p_provider": provider, "p_holder": holder, "p_slots": slots}
    with engine.begin() as conn:
        conn.execute(_statements(engine.dialect.name).free_slots, values)


def take_turn(engine: sa.Engine, run_id: str, provider: str, interval_s: float) -> float:
    """The provider's next send turn: seconds from the database's now until it (0 when due)."""
    values = {"p_run": run_id, "p_provider": provider, "p_interval_s": interval_s}
    with engine.begin() as conn:
        row = conn.execute(_statements(engine.dialect.name).take_turn, values).first()
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
        # The run row's lock makes every worker's check-and-hold one at a time. SQLite renders
        # no FOR UPDATE, and two deferred transactions could both read before either wrote: a
        # write first takes its database lock at once.
        if engine.dialect.name == "sqlite":
            conn.execute(runs.update().where(runs.c.id == run_id).values(id=runs.c.id))
        else:
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

    A request that ends while another of this worker's waits for a slot hands its slot over
    without giving it back (it stays this worker's in provider_slots, so the cap holds), as long
    as the worker keeps no more than its share: the cap over the run's live workers (`workers()`),
    rounded up. Beyond its share a slot goes back to the pool for the other workers to take.
    Sharing 16 slots, two saturated workers then spend no transaction on slots at all.
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
        workers: Callable[[], int] = lambda: 1,
    ) -> None:
        self.engine, self.run_id, self.provider, self.holder = engine, run_id, provider, holder
        self.rate_per_s = rate_per_s
        self.max_concurrency = max_concurrency
        self._executor = executor
        self._stop_reason = stop_reason
        self._workers = workers
        self._local = asyncio.Semaphore(max_concurrency)
        # One of this worker's requests asks the database for a slot at a time (the others wait
        # their turn here, in order): every waiting request polling would keep the store's
        # threads busy with empty takes while this worker's own slots wait to be given back.
        self._taking = asyncio.Lock()
        self._freed = asyncio.Event()  # set when this worker frees or hands over a slot
        self._spare: list[int] = []  # slots still held, handed over to the next request
        self._wanting = 0  # this worker's requests that have no slot yet
        self._next_ask_at = 0.0  # monotonic: when a worker at its share asks the pool again
        self._held: set[int] = set()  # slots this worker holds (in use or spare), as it knows
        self._unsure = False  # a take failed: a slot may be held that _held does not list
        self.in_flight = 0
        self.peak_in_flight = 0

    async def _call(self, function, *args):
        return await call_store(self._executor, self._stop_reason, function, *args)

    def share(self) -> int:
        """The slots this worker keeps between its requests: the cap over the live workers."""
        return -(-self.max_concurrency // max(1, self._workers()))

    async def _take_slot(self) -> int:
        async with self._taking:
            poll_s = _FIRST_POLL_S
            while True:
                if self._spare:
                    return self._spare.pop()
                self._freed.clear()
                # Below its share a worker asks the pool at once; at its share its own requests
                # hand it slots as they end, and the pool is asked only every _LONGEST_POLL_S
                # (for the slots other workers leave free).
                now = time.monotonic()
                if self.in_flight < self.share() or now >= self._next_ask_at:
                    self._next_ask_at = now + _LONGEST_POLL_S
                    taken = await self._call(self._take_one)
                    if taken:
                        self._held.add(taken[0])
                        return taken[0]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), poll_s)
                poll_s = min(poll_s * 2, _LONGEST_POLL_S)

    def _take_one(self) -> list[int]:
        """One take (on the store's thread); after a failed one, it first looks for the slot
        that take may have left held (a slot is dropped from _held only once its free commits,
        so a slot being freed is never mistaken for a lost one)."""
        known = frozenset(self._held) if self._unsure else None
        try:
            taken = take_slots(
                self.engine,
                self.run_id,
                self.provider,
                self.holder,
                self.max_concurrency,
                1,
                known,
            )
        except BaseException:
            self._unsure = True
            raise
        self._unsure = False
        return taken

    async def _free(self, slots: list[int]) -> None:
        # Shielded: a cancelled request must still give its slot back.
        await asyncio.shield(
            self._call(free_slots, self.engine, self.run_id, self.provider, self.holder, slots)
        )
        self._held.difference_update(slots)
        self._freed.set()

    async def _free_unwanted(self) -> None:
        """Spare slots nobody waits for any more (the waiter got one from the pool, or left)."""
        if self._spare and not self._wanting:
            spare, self._spare = self._spare, []
            await self._free(spare)

    @asynccontextmanager
    async def slot(self):
        self._wanting += 1
        wanting = True
        try:
            async with self._local:
                slot = await self._take_slot()
                self._wanting -= 1
                wanting = False
                await self._free_unwanted()
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    yield
                finally:
                    self.in_flight -= 1
                    if self._wanting and self.in_flight + len(self._spare) < self.share():
                        self._spare.append(slot)
                        self._freed.set()
                    else:
                        await self._free([slot])
        finally:
            if wanting:  # cancelled while waiting for one
                self._wanting -= 1
                await self._free_unwanted()

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
