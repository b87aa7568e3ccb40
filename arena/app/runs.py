"""Benchmark runs: plan them into the store, execute or resume them with the harness, report counts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from arena import store
from arena.challenges import Challenge, load_challenges
from arena.config import Settings
from arena.errors import ConfigError, RunError
from arena.harness import AttemptRecord, Harness, RunOutcome, build_request, plan_jobs
from arena.params import normalize_request, parse_capabilities
from arena.providers import adapter_class, route_capabilities
from arena.store.tables import Job, Run


@dataclass
class RunReport:
    run_id: str
    status: str
    outcome: RunOutcome
    summary: dict


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def local_providers(settings: Settings):
    """Start an in-process local provider for every `local` provider without a base_url."""
    from arena.providers.local import LocalServer

    with contextlib.ExitStack() as stack:
        urls = {}
        for name, provider in settings.providers.items():
            if provider.protocol == "local" and not provider.base_url:
                server = stack.enter_context(LocalServer())
                urls[name] = server.base_url
        yield urls


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
                route_capabilities(route.capabilities, adapters[route.provider]), where
            )
    routes = {(r.model, r.provider): r for r in settings.routes}
    for challenge_slug, model, provider in sorted(
        {(j.challenge, j.model, j.provider) for j in jobs}
    ):
        challenge, route, adapter = (
            by_slug[challenge_slug],
            routes[(model, provider)],
            adapters[provider],
        )
        normalize_request(
            build_request(challenge, route),
            route_capabilities(route.capabilities, adapter),
            adapter.shape_form,
            source=f"challenge {challenge.slug} on {route.target}",
        )
    for name in sorted({j.provider for j in jobs}):
        provider = settings.providers[name]
        if provider.api_key_env and not os.environ.get(provider.api_key_env):
            raise ConfigError(
                settings.source,
                f"providers.{name}.api_key_env",
                f"environment variable {provider.api_key_env} is not set "
                f"(needed by {sum(j.provider == name for j in jobs)} planned job(s))",
            )


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
) -> RunReport:
    """Plan a new run (or pick up `resume`, an id or "last") and execute every pending job.

    The plan is committed before the first request; each job is marked done in the same
    transaction as its final attempt, so a crash at any point leaves every job either done
    exactly once or pending for the next --resume.
    """
    engine = store.open_engine(settings.database_url)
    try:
        return _plan_and_execute(
            engine,
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
        engine.dispose()  # a nightly process runs many: each closes its connections


def _plan_and_execute(
    engine, settings, resume, max_cost_usd, on_planned, on_result, challenges, transport, tuning
) -> RunReport:
    all_challenges = (
        challenges
        if challenges is not None
        else load_challenges(settings.challenges_dir, list(settings.challenges) or None)
    )
    by_slug = {c.slug: c for c in all_challenges}
    if resume:
        run = store.get_run(engine, resume)
        if run.status == "completed":
            raise RunError(f"run {run.id} already completed: nothing to resume")
        jobs = store.pending_jobs(engine, run.id)
        missing = sorted({j.challenge for j in jobs} - set(by_slug))
        if missing:
            raise RunError(
                f"run {run.id} needs challenge {missing[0]!r}, which is no longer in {settings.challenges_dir}"
            )
        unknown = sorted(
            {(j.model, j.provider) for j in jobs} - {(r.model, r.provider) for r in settings.routes}
        )
        if unknown:
            raise RunError(
                f"run {run.id} needs {unknown[0][0]}@{unknown[0][1]}, which the config no longer has"
            )
        check_jobs(settings, all_challenges, jobs)
        spent = store.run_cost_usd(engine, run.id)
        max_cost_usd = max_cost_usd if max_cost_usd is not None else run.max_cost_usd
    else:
        planned = plan_run(settings, all_challenges)  # a run that cannot start stores nothing
        run = store.create_run(
            engine,
            Run(
                id=new_run_id(),
                status="planned",
                config_source=settings.source,
                settings_json=store.settings_snapshot(settings),
                max_cost_usd=max_cost_usd,
                samples=settings.samples,
            ),
            planned,
        )
        jobs = store.pending_jobs(engine, run.id)
        spent = 0.0
    if on_planned:
        on_planned(run.id, len(jobs))
    next_attempts = store.next_attempt_number(engine, [j.id for j in jobs])
    store.set_run_status(engine, run.id, "running")
    writer = store.StoreWriter(engine, settings.data_dir)
    status = "interrupted"
    try:
        with local_providers(settings) as urls:
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
            )
            outcome = asyncio.run(harness.execute(run.id, jobs, next_attempts))
        status = "budget_stopped" if outcome.budget_stopped else "completed"
    finally:
        writer.close()
        store.set_run_status(engine, run.id, status, finished=status != "interrupted")
    return RunReport(
        run_id=run.id,
        status=status,
        outcome=outcome,
        summary=store.run_summary(engine, run.id),
    )
