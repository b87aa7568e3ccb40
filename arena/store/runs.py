"""Runs and their jobs: create, read, resume, set status, count, cost; the settings snapshot a run keeps."""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from arena.errors import RunError, StoreError
from arena.store.leases import HeldLease, insert_lease
from arena.store.messages import one_line
from arena.store.tables import Attempt, Job, Run, utcnow


def create_run(
    engine: sa.Engine, run: Run, jobs: Iterable[Job], lease: HeldLease | None = None
) -> Run:
    """Store a run and its whole plan in one transaction, before any request is sent.

    `lease` (the new run's "run:<id>") is inserted in the same transaction, so no other executor
    can pick the run up between its creation and its first request.
    """
    jobs = list(jobs)
    run.jobs_total = len(jobs)
    with Session(engine) as session:
        session.add(run)
        session.flush()
        if lease is not None:
            insert_lease(engine, session.connection(), lease)
        for job in jobs:
            job.run_id = run.id
            session.add(job)
        try:
            session.commit()
        except (IntegrityError, OperationalError) as exc:  # e.g. a SQLite file another holds locked
            raise StoreError(f"run {run.id} could not be planned: {one_line(exc)}") from None
        session.refresh(run)
        session.expunge(run)
    return run


def get_run(engine: sa.Engine, run_id: str) -> Run:
    """A run by id, or the newest run for "last"."""
    with Session(engine) as session:
        if run_id == "last":
            run = session.exec(select(Run).order_by(Run.created_at.desc(), Run.id.desc())).first()
            if run is None:
                raise RunError("no run to resume: the store has no runs yet")
        else:
            run = session.get(Run, run_id)
            if run is None:
                raise RunError(f"no run with id {run_id!r}")
        session.expunge(run)
        return run


def list_runs(engine: sa.Engine) -> list[Run]:
    with Session(engine) as session:
        runs = list(session.exec(select(Run).order_by(Run.created_at.desc())))
        for run in runs:
            session.expunge(run)
        return runs


def set_run_status(engine: sa.Engine, run_id: str, status: str, finished: bool = False) -> None:
    """Record a run's status; StoreError (one line) when the store refuses."""
    from arena.store.writer import describe_failure

    try:
        with Session(engine) as session:
            run = session.get(Run, run_id)
            run.status = status
            if finished:
                run.finished_at = utcnow()
            session.add(run)
            session.commit()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"could not record run {run_id} as {status}: {describe_failure(exc)}"
        ) from None


def set_run_budget(engine: sa.Engine, run_id: str, max_cost_usd: float) -> None:
    """A stored run's new --max-cost (a resume with a larger budget)."""
    try:
        with engine.begin() as conn:
            runs = Run.__table__
            conn.execute(runs.update().where(runs.c.id == run_id).values(max_cost_usd=max_cost_usd))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"could not set the budget of run {run_id}: {one_line(exc)}") from None


def pending_jobs(engine: sa.Engine, run_id: str) -> list[Job]:
    """Jobs of a run not yet done, in plan order."""
    with Session(engine) as session:
        jobs = list(
            session.exec(
                select(Job).where(Job.run_id == run_id, Job.status == "pending").order_by(Job.id)
            )
        )
        for job in jobs:
            session.expunge(job)
        return jobs


def next_attempt_number(engine: sa.Engine, job_ids: list[int]) -> dict[int, int]:
    """For resumed jobs: the attempt number to use next (attempts made before a crash are kept)."""
    if not job_ids:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(Attempt.job_id, sa.func.max(Attempt.attempt))
            .where(Attempt.job_id.in_(job_ids))
            .group_by(Attempt.job_id)
        ).all()
    return {job_id: last + 1 for job_id, last in rows}


def run_cost_usd(engine: sa.Engine, run_id: str) -> float:
    with Session(engine) as session:
        total = session.exec(
            select(sa.func.sum(Attempt.cost_usd)).where(Attempt.run_id == run_id)
        ).one()
    return float(total or 0.0)


def run_summary(engine: sa.Engine, run_id: str) -> dict:
    """Counts of a run's jobs by status and outcome."""
    with Session(engine) as session:
        rows = session.exec(
            select(Job.status, Job.outcome, sa.func.count())
            .where(Job.run_id == run_id)
            .group_by(Job.status, Job.outcome)
        ).all()
    summary = {"pending": 0, "done": 0, "success": 0, "failed": 0, "outcomes": {}}
    for status, outcome, count in rows:
        summary[status] = summary.get(status, 0) + count
        if outcome:
            summary["outcomes"][outcome] = summary["outcomes"].get(outcome, 0) + count
            summary["success" if outcome == "success" else "failed"] += count
    return summary


def settings_snapshot(settings, challenges=()) -> str:
    """The providers and models of a run, as JSON, without any secret (only env var names).

    Route and challenge `params` are included: config refuses a parameter named like a credential.
    """
    data = {
        "providers": {
            name: {
                k: getattr(p, k)
                for k in (
                    "protocol",
                    "base_url",
                    "api_key_env",
                    "rate_limit_per_s",
                    "max_concurrency",
                    "timeout_s",
                    "max_retries",
                    "warmup",
                    "baseline",
                )
            }
            for name, p in settings.providers.items()
        },
        "models": {
            name: {
                "tasks": list(m.tasks),
                "baseline": m.baseline,
                "routes": [
                    {
                        "provider": r.provider,
                        "model_id": r.model_id,
                        "price_usd": r.price_usd,
                        "price_usd_by_tier": r.price_usd_by_tier,
                        "params": r.params,
                    }
                    for r in m.routes
                ],
            }
            for name, m in settings.models.items()
        },
    }
    challenge_params = {c.slug: c.params for c in challenges if c.params}
    if challenge_params:
        data["challenge_params"] = challenge_params
    return json.dumps(data, sort_keys=True)
