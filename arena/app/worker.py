"""`arena worker`: execute a stored run's jobs beside any number of other workers, on any host,
through one PostgreSQL; and `arena run --workers N`: N local worker processes and one progress bar.

A worker joins the run with a lease of its own (store.claims), claims batches of pending jobs,
sends them within the provider limits and the budget every worker of the run shares
(store.quotas), and writes each final attempt under its own claim. It leaves when the run has no
pending job left for anyone, giving back whatever it still holds; a worker that dies gives it back
through its lease's expiry. SQLite takes one writer at a time, so there a run has one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa

from arena import store
from arena.app.runs import check_resumable
from arena.challenges import load_challenges
from arena.config import Settings
from arena.errors import RunError, StoreError, plural
from arena.harness import AttemptRecord, Harness, RunOutcome
from arena.providers.local import started_local_providers
from arena.store import claims, quotas
from arena.store.tables import Run

log = logging.getLogger("arena.worker")

REAP_EVERY_S = 2.0  # how often a worker looks for gone workers (before a claim)
SQLITE_ONE_WORKER = (
    "SQLite takes one writer at a time, so a run has one worker there; share a run between "
    'workers on PostgreSQL (database_url = "postgresql://...")'
)


@dataclass
class WorkerReport:
    run_id: str
    holder: str
    status: str  # the run's status as this worker left it
    outcome: RunOutcome
    summary: dict


def default_concurrency(settings: Settings, providers: set[str]) -> int:
    """Jobs a worker keeps claimed at once: twice the providers' caps, so that each cap stays full."""
    return max(1, 2 * sum(settings.providers[name].max_concurrency for name in providers))


def run_worker(
    settings: Settings,
    run_id: str = "last",
    *,
    concurrency: int | None = None,
    on_joined: Callable[[str, int], None] | None = None,
    on_result: Callable[[AttemptRecord], None] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    transport: str = "aiohttp",
    tuning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    lease_ttl_s: float | None = None,
    idle_s: float = 1.0,
) -> WorkerReport:
    """Join a stored run (an id, or "last") and execute its pending jobs until none is left.

    on_joined(run id, jobs pending) once joined; on_result(attempt) for this worker's attempts;
    on_progress(run summary) every second, from a thread, with every worker's counts. Its
    lease's ttl is `lease_ttl_s`, else the config's worker_lease_ttl_s.
    """
    engine = store.open_engine(settings.database_url)
    try:
        run_id = store.get_run(
            engine, run_id
        ).id  # "last" named once: a run planned later is not ours
    except BaseException:
        engine.dispose()
        raise
    stop = threading.Event()
    if on_progress is not None:
        threading.Thread(
            target=_report_progress, args=(engine, run_id, on_progress, stop), daemon=True
        ).start()
    try:
        return _work(
            engine,
            settings,
            run_id,
            concurrency,
            on_joined,
            on_result,
            transport,
            tuning,
            lease_ttl_s or settings.worker_lease_ttl_s,
            idle_s,
        )
    finally:
        stop.set()
        engine.dispose()


def _report_progress(engine, run_id: str, on_progress, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with contextlib.suppress(StoreError, sa.exc.SQLAlchemyError):  # the next second tries again
            on_progress(store.run_summary(engine, run_id))


def _refuse_other_executors(engine, run: Run) -> None:
    single = store.read_holder(engine, f"run:{run.id}")
    if single is not None and not single.gone():
        raise RunError(
            f"run {run.id} is being executed by `arena run` ({single.describe()}); workers "
            "share a run planned with `arena run --plan-only`, or one its executor has left"
        )
    if engine.dialect.name != "postgresql":
        others = claims.live_workers(engine, run.id)
        if others:
            raise RunError(
                f"run {run.id} already has a worker ({others[0].describe()}): {SQLITE_ONE_WORKER}"
            )


def _work(
    engine, settings, run_id, concurrency, on_joined, on_result, transport, tuning, ttl_s, idle_s
) -> WorkerReport:
    run = store.get_run(engine, run_id)
    challenges = load_challenges(settings.challenges_dir)  # the run's, whatever the config selects
    if run.status == "completed":
        return WorkerReport(
            run.id, "", "completed", RunOutcome(), store.run_summary(engine, run.id)
        )
    _refuse_other_executors(engine, run)
    held = claims.join_run(engine, run.id, ttl_s)
    heartbeat = store.Heartbeat(engine, held).start()
    token = held.holder.rsplit(":", 1)[1]
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arena-worker-store")
    writer = outcome = None
    try:
        claims.reap_workers(engine, run.id)
        live = {h.name.rsplit(":", 1)[1] for h in claims.live_workers(engine, run.id)}
        store.replay_spill(
            engine, settings.data_dir, run.id, skip=frozenset(f"{run.id}.{t}" for t in live)
        )
        pending = store.pending_jobs(engine, run.id)
        check_resumable(settings, run.id, challenges, pending)
        providers = {job.provider for job in pending}
        shared = engine.dialect.name == "postgresql"
        if shared:
            quotas.prepare_limits(
                engine, run.id, {p: settings.providers[p].max_concurrency for p in providers}
            )
        if run.status != "running":
            store.set_run_status(engine, run.id, "running")
        if on_joined:
            on_joined(run.id, len(pending))
        writer = store.StoreWriter(
            engine,
            settings.data_dir,
            run_id=run.id,
            retry_s=settings.store_retry_s,
            claimed_by=held.holder,
            spill_key=f"{run.id}.{token}",
        )
        claim = _Claimer(engine, run.id, held.holder, executor, heartbeat.stop_reason, len(live))
        limiter_for = budget = None
        if shared:

            def limiter_for(name, provider):
                return quotas.SharedLimiter(
                    engine,
                    run.id,
                    name,
                    held.holder,
                    provider.rate_limit_per_s,
                    provider.max_concurrency,
                    executor,
                    heartbeat.stop_reason,
                    workers=lambda: claim.live_workers,
                )

            if run.max_cost_usd is not None:
                budget = quotas.SharedBudget(
                    engine, run.id, held.holder, run.max_cost_usd, executor, heartbeat.stop_reason
                )
        with started_local_providers(settings) as urls:
            harness = Harness(
                settings,
                {c.slug: c for c in challenges},
                writer,
                base_urls=urls,
                max_cost_usd=run.max_cost_usd,
                spent_usd=store.run_cost_usd(engine, run.id),
                on_result=on_result,
                transport=transport,
                tuning=tuning,
                stop_reason=heartbeat.stop_reason,
                limiter_for=limiter_for,
                budget=budget,
            )
            outcome = asyncio.run(
                harness.execute_claimed(
                    run.id,
                    claim,
                    concurrency
                    or default_concurrency(settings, providers or set(settings.providers)),
                    idle_s=idle_s,
                )
            )
    finally:
        if writer is not None:
            writer.close()
        executor.shutdown(wait=False)
        heartbeat.stop()
        claims.leave_run(engine, held)
        if outcome is None:  # it stopped on an error or a signal: say so if it was the last out
            with contextlib.suppress(StoreError):
                _settle_status(engine, run.id, RunOutcome())
    if writer.health == "failed":
        raise RunError(
            f"worker of run {run.id} stopped: {writer.failure_summary()}; the next worker or "
            f"`arena run --resume {run.id}` saves them first"
        )
    status = _settle_status(engine, run.id, outcome)
    if outcome.stopped_reason:
        raise RunError(f"worker of run {run.id} stopped sending: {outcome.stopped_reason}")
    return WorkerReport(run.id, held.holder, status, outcome, store.run_summary(engine, run.id))


class _Claimer:
    """The harness's claim(n): reap gone workers now and then, claim up to n jobs with their next
    attempt numbers; None once no job of the run is pending, [] while others hold the rest.
    `live_workers` is the run's count of live workers as of the latest reaping (the limiters'
    share of each provider's slots).

    A claim that fails on the way (a connection cut as its transaction commits) may have claimed
    jobs that were never handed over: after a failure, the next claim first takes back this
    worker's claimed jobs it has not handed over (calls come one at a time, so none is in flight).
    """

    def __init__(self, engine, run_id, holder, executor, stop_reason, live_workers: int) -> None:
        self.engine, self.run_id, self.holder = engine, run_id, holder
        self.executor, self.stop_reason = executor, stop_reason
        self.live_workers = max(1, live_workers)
        self._reaped_at = time.monotonic()
        self._handed: set[int] = set()  # the ids of every job handed to the harness
        self._unsure = False  # a claim failed midway: some claimed job may not have been handed

    async def __call__(self, n: int):
        return await quotas.call_store(self.executor, self.stop_reason, self._claim_or_note, n)

    def _claim_or_note(self, n: int):
        try:
            return self._claim(n)
        except BaseException:
            self._unsure = True
            raise

    def _reap(self) -> None:
        claims.reap_workers(self.engine, self.run_id)
        self.live_workers = max(1, len(claims.live_workers(self.engine, self.run_id)))
        self._reaped_at = time.monotonic()

    def _claim(self, n: int):
        if time.monotonic() - self._reaped_at > REAP_EVERY_S:
            self._reap()
        jobs = self._not_handed(n) if self._unsure else []
        jobs += claims.claim_jobs(self.engine, self.run_id, self.holder, n - len(jobs))
        if jobs:
            numbers = store.next_attempt_number(self.engine, [job.id for job in jobs])
            self._handed.update(job.id for job in jobs)
            return [(job, numbers.get(job.id, 1)) for job in jobs]
        state = claims.pool_state(self.engine, self.run_id)
        if state.pending == 0:
            return None
        if state.unclaimed == 0:  # the rest is claimed: by the living, or by workers to reap
            self._reap()
        return []

    def _not_handed(self, n: int) -> list:
        """Up to n of this worker's claimed jobs that it never handed over; the rest next time."""
        jobs = [
            job
            for job in claims.claimed_jobs(self.engine, self.run_id, self.holder)
            if job.id not in self._handed
        ]
        self._unsure = len(jobs) > n
        return jobs[:n]


def _settle_status(engine, run_id: str, outcome: RunOutcome) -> str:
    """The run's status once this worker has left: completed when no job is pending; else the
    last worker out says why it stopped (budget_stopped, interrupted)."""
    state = claims.pool_state(engine, run_id)
    if state.pending == 0:
        status = "completed"
    elif claims.live_workers(engine, run_id):
        return "running"
    else:
        status = "budget_stopped" if outcome.budget_stopped else "interrupted"
    try:
        store.set_run_status(engine, run_id, status, finished=status != "interrupted")
    except StoreError as exc:
        log.warning("arena: %s", exc)
    return status


# --- arena run --workers N ------------------------------------------------------------------------


@dataclass
class FleetReport:
    run_id: str
    status: str
    exit_codes: list[int]
    summary: dict


def check_workers(settings: Settings, workers: int) -> None:
    """Several workers need PostgreSQL: one line saying so, before anything is planned."""
    if workers > 1 and sa.engine.make_url(settings.database_url).get_backend_name() != "postgresql":
        raise RunError(f"--workers {workers}: {SQLITE_ONE_WORKER}")


def run_fleet(
    settings: Settings,
    run_id: str,
    workers: int,
    *,
    worker_args: list[str],
    on_progress: Callable[[dict], None] | None = None,
    poll_s: float = 0.5,
) -> FleetReport:
    """Start `workers` local `arena worker --run RUN_ID` processes and wait for them, calling
    on_progress(run summary) every poll_s; Ctrl-C or SIGTERM stops them with SIGTERM (each gives
    back its jobs). `worker_args` are the CLI's own options for each worker (e.g. --config)."""
    check_workers(settings, workers)
    engine = store.open_engine(settings.database_url)
    command = [sys.executable, "-m", "arena", "worker", "--run", run_id, "--quiet", *worker_args]
    children = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
        for _ in range(workers)
    ]
    try:
        while any(child.poll() is None for child in children):
            if on_progress:
                with contextlib.suppress(StoreError):
                    on_progress(store.run_summary(engine, run_id))
            time.sleep(poll_s)
        summary = store.run_summary(engine, run_id)
        if on_progress:
            on_progress(summary)
        status = store.get_run(engine, run_id).status
    except BaseException:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
        raise
    finally:
        engine.dispose()
    return FleetReport(run_id, status, [child.returncode for child in children], summary)


def describe_fleet(report: FleetReport) -> str:
    failed = [code for code in report.exit_codes if code != 0]
    line = (
        f"run {report.run_id}: {report.status}; {plural(len(report.exit_codes), 'worker')}, "
        f"{report.summary['done']} of {report.summary['done'] + report.summary['pending']} jobs done "
        f"({report.summary['success']} succeeded, {report.summary['failed']} failed)"
    )
    if failed:
        line += f"; {plural(len(failed), 'worker')} exited with an error (its line is above)"
    return line
