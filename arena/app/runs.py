"""Benchmark runs: plan them into the store, execute or resume them with the harness, report counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from arena import store
from arena.challenges import Challenge, load_challenges
from arena.config import Settings
from arena.errors import ArenaError, ConfigError, RunError, StoreError, plural
from arena.harness import AttemptRecord, Harness, RunOutcome, plan_jobs, prepare_request
from arena.params import parse_capabilities
from arena.providers import adapter_class, route_capabilities
from arena.providers.local import started_local_providers
from arena.store.tables import Job, Run
from arena.store.writer import FIRST_RETRY_S, LONGEST_RETRY_S

log = logging.getLogger("arena.runs")


@dataclass
class RunReport:
    run_id: str
    status: str
    outcome: RunOutcome
    summary: dict


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def new_run(
    run_id: str, settings: Settings, challenges: list[Challenge], max_cost_usd: float | None
) -> Run:
    """A new run's row: its config's snapshot (no secret), budget and samples."""
    return Run(
        id=run_id,
        status="planned",
        config_source=settings.source,
        settings_json=store.settings_snapshot(settings, challenges),
        max_cost_usd=max_cost_usd,
        samples=settings.samples,
    )


def plan_run(settings: Settings, challenges: list[Challenge]) -> list[Job]:
    """The jobs a new run would store, after check_jobs: what `arena validate` and `arena run` share."""
    planned = plan_jobs(settings, challenges)
    if not planned:
        raise RunError(
            "nothing to run: no configured model does the task of any selected challenge"
        )
    check_jobs(settings, challenges, planned)
    return planned


def check_jobs(settings: Settings, challenges: list[Challenge], jobs: list[Job]) -> None:
    """Everything a run would refuse, found before anything is stored or sent.

    Every route's capability table is read; every planned (challenge, route) request is built and
    normalized as the harness will build it; every provider the jobs use has its key variable set.
    """
    by_slug = {c.slug: c for c in challenges}
    adapters = {}
    for model in settings.models.values():
        for route in model.routes:
            protocol = settings.providers[route.provider].protocol
            adapters[route.provider] = adapters.get(route.provider) or adapter_class(protocol)
            where = f"{settings.source}: models.{model.name}.providers.{route.provider}"
            parse_capabilities(
                route_capabilities(route.capabilities, adapters[route.provider], route.model_id),
                where,
            )
    routes = {(r.model, r.provider): r for r in settings.routes}
    for challenge_slug, model, provider in sorted(
        {(j.challenge, j.model, j.provider) for j in jobs}
    ):
        prepare_request(by_slug[challenge_slug], routes[(model, provider)], adapters[provider])
    for name in sorted({j.provider for j in jobs}):
        provider = settings.providers[name]
        if provider.api_key_env and not os.environ.get(provider.api_key_env):
            raise ConfigError(
                settings.source,
                f"providers.{name}.api_key_env",
                f"environment variable {provider.api_key_env} is not set "
                f"(needed by {plural(sum(j.provider == name for j in jobs), 'planned job')})",
            )


def check_resumable(
    settings: Settings, run_id: str, challenges: list[Challenge], jobs: list[Job]
) -> None:
    """What a stored run's pending jobs need: their challenges and routes still there, and
    everything check_jobs asks of a new run."""
    missing = sorted({j.challenge for j in jobs} - {c.slug for c in challenges})
    if missing:
        raise RunError(
            f"run {run_id} needs challenge {missing[0]!r}, which is no longer in {settings.challenges_dir}"
        )
    unknown = sorted(
        {(j.model, j.provider) for j in jobs} - {(r.model, r.provider) for r in settings.routes}
    )
    if unknown:
        raise RunError(
            f"run {run_id} needs {unknown[0][0]}@{unknown[0][1]}, which the config no longer has"
        )
    check_jobs(settings, challenges, jobs)


def refuse_while_workers(engine, run_id: str) -> None:
    """One line naming a live worker of the run (`arena worker`), if any: it executes the run."""
    from arena.store.claims import live_workers

    workers = live_workers(engine, run_id)
    if workers:
        raise RunError(
            f"run {run_id} is being executed by {plural(len(workers), 'worker')} "
            f"(the first: {workers[0].describe()}); wait for them or stop them"
        )


def plan_only(
    settings: Settings,
    *,
    max_cost_usd: float | None = None,
    challenges: list[Challenge] | None = None,
) -> tuple[str, int]:
    """Store a new run's plan for workers to execute (`arena run --plan-only`): (run id, jobs)."""
    all_challenges = (
        challenges
        if challenges is not None
        else load_challenges(settings.challenges_dir, list(settings.challenges) or None)
    )
    planned = plan_run(settings, all_challenges)
    engine = store.open_engine(settings.database_url)
    try:
        run = store.create_run(
            engine, new_run(new_run_id(), settings, all_challenges, max_cost_usd), planned
        )
    finally:
        engine.dispose()
    return run.id, len(planned)


class RunLease:
    """The lease "run:<id>" of the run this process executes: taken (or inserted with a new run's
    plan), kept alive by a heartbeat thread, released when the run ends.

    While it cannot be renewed, `stop_reason` closes the harness's gate before the lease could
    expire (see arena.store.leases): no request is sent once another executor could take over.
    """

    def __init__(self, engine, ttl_s: float = store.DEFAULT_TTL_S) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.held: store.HeldLease | None = None
        self.heartbeat: store.Heartbeat | None = None

    def new(self, run_id: str) -> store.HeldLease:
        """The lease for a run about to be created: store.create_run inserts it with the plan."""
        self.held = store.HeldLease.new(f"run:{run_id}", self.ttl_s)
        return self.held

    def take(self, run: Run) -> Run:
        """Acquire an existing run's lease (one line naming the live owner if another has it), then
        start the heartbeat; returns the run as read under the lease."""
        try:
            self.held = store.acquire_lease(self.engine, f"run:{run.id}", self.ttl_s)
        except store.LeaseHeld as exc:
            raise RunError(
                f"run {run.id} is being executed by {exc.holder.describe()}; {exc.holder.advice()}"
            ) from None
        self.keep()
        return store.get_run(self.engine, run.id)

    def keep(self) -> None:
        """Start the heartbeat (after a new run's plan, and its lease, are committed)."""
        self.heartbeat = store.Heartbeat(self.engine, self.held).start()

    def stop_reason(self) -> str | None:
        return self.heartbeat.stop_reason() if self.heartbeat is not None else None

    def taken_over(self) -> bool:
        """Another executor holds the run now: the run's status is its to write, not ours."""
        return self.heartbeat is not None and self.heartbeat.lost

    def release(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.held is not None:
            store.release_lease(self.engine, self.held)


def run_benchmark(
    settings: Settings,
    *,
    resume: str | None = None,
    max_cost_usd: float | None = None,
    on_planned: Callable[[str, int], None] | None = None,
    on_result: Callable[[AttemptRecord], None] | None = None,
    challenges: list[Challenge] | None = None,
    transport: str = "aiohttp",
    tuning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    lease_ttl_s: float = store.DEFAULT_TTL_S,
) -> RunReport:
    """Plan a new run (or pick up `resume`, an id or "last") and execute every pending job.

    The plan is committed before the first request; each job is marked done in the same
    transaction as its final attempt, so a crash at any point leaves every job either done
    exactly once or pending for the next --resume. The run is executed only while this process
    holds its lease "run:<id>": a second executor is refused with one line naming the owner, and
    an executor that cannot renew its lease stops sending (RunError, the run left interrupted).
    """
    engine = store.open_engine(settings.database_url)
    lease = RunLease(engine, lease_ttl_s)
    try:
        report = _plan_and_execute(
            engine,
            lease,
            settings,
            resume,
            max_cost_usd,
            on_planned,
            on_result,
            challenges,
            transport,
            tuning,
        )
    finally:
        lease.release()
        engine.dispose()  # a nightly process runs many: each closes its connections
    if report.outcome.stopped_reason:
        raise RunError(
            f"run {report.run_id} stopped sending: {report.outcome.stopped_reason}; "
            f"{plural(report.summary['pending'], 'job')} left pending for `arena run --resume {report.run_id}`"
        )
    return report


def _plan_and_execute(
    engine,
    lease,
    settings,
    resume,
    max_cost_usd,
    on_planned,
    on_result,
    challenges,
    transport,
    tuning,
) -> RunReport:
    all_challenges = (
        challenges
        if challenges is not None
        else load_challenges(settings.challenges_dir, list(settings.challenges) or None)
    )
    by_slug = {c.slug: c for c in all_challenges}
    if resume:
        run = lease.take(store.get_run(engine, resume))
        if run.status == "completed":
            raise RunError(f"run {run.id} already completed: nothing to resume")
        refuse_while_workers(engine, run.id)
        store.replay_spill(engine, settings.data_dir, run.id)  # results paid for: saved first
        jobs = store.pending_jobs(engine, run.id)
        check_resumable(settings, run.id, all_challenges, jobs)
        spent = store.run_cost_usd(engine, run.id)
        max_cost_usd = max_cost_usd if max_cost_usd is not None else run.max_cost_usd
    else:
        planned = plan_run(settings, all_challenges)  # a run that cannot start stores nothing
        run_id = new_run_id()
        run = store.create_run(
            engine,
            new_run(run_id, settings, all_challenges, max_cost_usd),
            planned,
            lease=lease.new(run_id),
        )
        lease.keep()
        jobs = store.pending_jobs(engine, run.id)
        spent = 0.0
    try:
        if on_planned:
            on_planned(run.id, len(jobs))
        next_attempts = store.next_attempt_number(engine, [j.id for j in jobs])
        store.set_run_status(engine, run.id, "running")
    except KeyboardInterrupt:  # the plan is stored: the hint names it
        raise RunInterrupted(run.id) from None
    writer = store.StoreWriter(
        engine, settings.data_dir, run_id=run.id, retry_s=settings.store_retry_s
    )
    try:
        with started_local_providers(settings) as urls:
            harness = Harness(
                settings,
                by_slug,
                writer,
                base_urls=urls,
                max_cost_usd=max_cost_usd,
                spent_usd=spent,
                on_result=on_result,
                transport=transport,
                tuning=tuning,
                stop_reason=lease.stop_reason,
            )
            outcome = asyncio.run(harness.execute(run.id, jobs, next_attempts))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI makes it one)
        note = _end_run(engine, run.id, writer, "interrupted", settings.store_retry_s, hint=False)
        raise RunInterrupted(run.id, note) from None
    except BaseException:
        note = _end_run(engine, run.id, writer, "interrupted", settings.store_retry_s)
        if note:  # the error that stopped the run comes first; this must not be lost with it
            log.warning("arena: %s", note)
        raise
    status = (
        "interrupted"
        if outcome.stopped_reason
        else "budget_stopped"
        if outcome.budget_stopped
        else "completed"
    )
    note = _end_run(
        engine, run.id, writer, status, settings.store_retry_s, record=not lease.taken_over()
    )
    if note:
        raise RunFailed(note)
    return RunReport(
        run_id=run.id,
        status=status,
        outcome=outcome,
        summary=store.run_summary(engine, run.id),
    )


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a stored run: its id (for the resume hint) and, when the ending
    could not save everything or record the status, a note saying so."""

    def __init__(self, run_id: str, note: str = "") -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.note = note


class RunFailed(ArenaError):
    """A run stopped part-way because its store failed; the message says what was kept and how to
    finish it."""


def _end_run(
    engine,
    run_id: str,
    writer,
    status: str,
    retry_s: float,
    hint: bool = True,
    record: bool = True,
) -> str:
    """Flush the writer and record how the run ended; "" when all went well, else one line saying
    what failed, where the results went, and (with `hint`) how to finish the run.

    A Ctrl-C or SIGTERM meanwhile does not abandon this: it tells the writer to stop waiting for a
    failing store and spill what it holds, and the status is still written (tried once then).
    """
    with _signals_hurry(writer) as hurried:
        if writer.health == "failing":
            log.warning(
                "arena: stopping: the store is failing; the results it holds are tried for up to "
                "%g s more (Ctrl-C again writes them to the spill file now)",
                retry_s,
            )
        writer.close()
        failed = writer.health == "failed"
        if failed:
            status = "failed"
        recorded = (  # without `record` the run is another executor's now: its status too
            _record_status(engine, run_id, status, 0.0 if failed else retry_s, hurried)
            if record
            else None
        )
    resume = f"`arena run --resume {run_id}`"
    if failed:
        marked = f"marked {status}" if recorded is None else f"not marked {status} ({recorded})"
        then = f"; once the store works again, {resume} saves them first and finishes the run"
        return f"run {run_id} stopped, {marked}: {writer.failure_summary()}" + (
            then if hint else ""
        )
    if recorded is not None:
        then = f"; {resume} records it" if hint else ""
        return (
            f"run {run_id} ended {status} and every result is saved, but the store did not take "
            f"its status ({recorded})" + then
        )
    return ""


def _record_status(
    engine, run_id: str, status: str, retry_s: float, hurried: threading.Event
) -> str | None:
    """Write the run's status, trying again with backoff for up to retry_s (unless `hurried`);
    None once written, else why the store refused."""
    deadline = time.monotonic() + retry_s
    wait_s = FIRST_RETRY_S
    while True:
        try:
            store.set_run_status(engine, run_id, status, finished=status != "interrupted")
            return None
        except StoreError as exc:
            problem = str(exc)
        if hurried.is_set() or time.monotonic() + wait_s > deadline:
            return problem
        if wait_s == FIRST_RETRY_S:
            log.warning("arena: %s; trying again for up to %g s", problem, retry_s)
        time.sleep(wait_s)
        wait_s = min(wait_s * 2, LONGEST_RETRY_S)


@contextlib.contextmanager
def _signals_hurry(writer):
    """While the run's end is written, Ctrl-C and SIGTERM make it hurry instead of cutting it off
    (which would leave the run `running` and held results unsaved); yields an Event set if one came.
    Signal handlers belong to the main thread: elsewhere this changes nothing."""
    hurried = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield hurried
        return

    def hurry(signum, frame) -> None:
        hurried.set()
        writer.abandon()

    previous = {sig: signal.signal(sig, hurry) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield hurried
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
