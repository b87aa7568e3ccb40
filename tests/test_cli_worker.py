"""`arena run --plan-only`, `arena worker` and `arena run --workers N` from the command line, on
SQLite (one worker, and the line that says why) and PostgreSQL (several, one budget)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import write_challenges, write_config
from support.store import read_jobs

from arena import store

pytestmark = pytest.mark.slow  # CLI runs in subprocesses


def _arena(env, *args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def setup(tmp_path, fault_server, db_url):
    """A config of one model × 6 challenges at $0.01 a job on the loopback provider (run with
    --samples 2: 12 jobs)."""
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={"ok": ["text-to-image"]},
        challenges_dir=write_challenges(tmp_path / "challenges", 6),
        db_url=db_url,
        data_dir=tmp_path / "data",
        max_concurrency=2,
    )
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    return env, db_url


def _done_once(db_url: str, run_id: str) -> list:
    engine = store.open_engine(db_url)
    try:
        jobs = read_jobs(engine, run_id)
        attempts = store.read_attempts(engine)
        return jobs, attempts[attempts["run_id"] == run_id]
    finally:
        engine.dispose()


def _run_id(planned: subprocess.CompletedProcess) -> str:
    first = planned.stdout.splitlines()[0]
    assert first.startswith("run ") and "planned 12 jobs; nothing sent" in first, planned.stdout
    return first.split()[1].rstrip(":")


def test_plan_only_stores_the_jobs_and_a_worker_executes_them(setup, fault_server):
    env, db_url = setup
    planned = _arena(env, "run", "--plan-only", "--samples", "2")
    assert planned.returncode == 0, planned.stderr
    run_id = _run_id(planned)
    assert f"arena worker --run {run_id}" in planned.stdout
    jobs, attempts = _done_once(db_url, run_id)
    assert len(jobs) == 12 and set(jobs["status"]) == {"pending"} and attempts.empty
    assert sum(fault_server.requests.values()) == 0  # nothing was sent

    worked = _arena(env, "worker", "--run", run_id, "--quiet")
    assert worked.returncode == 0, worked.stderr
    assert worked.stdout.startswith(f"run {run_id}: completed; this worker made 12 attempts")
    jobs, attempts = _done_once(db_url, run_id)
    assert set(jobs["status"]) == {"done"} and set(jobs["outcome"]) == {"success"}
    assert attempts.groupby("job_id").size().max() == 1 and len(attempts) == 12
    assert jobs["claimed_by"].notna().all()  # each was claimed by the worker that did it
    engine = store.open_engine(db_url)
    assert store.get_run(engine, run_id).status == "completed"
    engine.dispose()

    again = _arena(env, "worker", "--run", run_id, "--quiet")
    assert again.returncode == 0 and f"run {run_id}: completed" in again.stdout
    assert len(_done_once(db_url, run_id)[1]) == 12  # a late worker sends nothing


def test_plan_only_refuses_resume_and_workers(setup):
    env, _ = setup
    result = _arena(env, "run", "--plan-only", "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "arena: error: --plan-only stores a new run: it takes neither --resume nor --workers"
    )


def test_worker_refuses_a_run_that_arena_run_is_executing(setup, tmp_path):
    env, db_url = setup
    run_id = _run_id(_arena(env, "run", "--plan-only", "--samples", "2"))
    engine = store.open_engine(db_url)
    held = store.acquire_lease(engine, f"run:{run_id}")  # as `arena run --resume` would
    try:
        result = _arena(env, "worker", "--run", run_id)
    finally:
        store.release_lease(engine, held)
        engine.dispose()
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith(f"arena: error: run {run_id} is being executed by `arena run` (pid ")
    assert "\n" not in line


def test_sqlite_keeps_one_worker_and_says_why(tmp_path, fault_server, sqlite_url):
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={"ok": ["text-to-image"]},
        challenges_dir=write_challenges(tmp_path / "challenges", 2),
        db_url=sqlite_url,
        data_dir=tmp_path / "data",
    )
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    result = _arena(env, "run", "--workers", "2")
    assert result.returncode == 2 and result.stdout == ""  # refused before anything is planned
    engine = store.open_engine(sqlite_url)
    assert store.list_runs(engine) == []
    engine.dispose()
    assert result.stderr.strip() == (
        "arena: error: --workers 2: SQLite takes one writer at a time, so a run has one worker "
        'there; share a run between workers on PostgreSQL (database_url = "postgresql://...")'
    )
    one = _arena(env, "run", "--workers", "1")
    assert one.returncode == 0, one.stderr
    assert "completed; 1 worker, 2 of 2 jobs done (2 succeeded, 0 failed)" in one.stdout


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_local_workers_share_one_run_and_one_budget(setup, fault_server):
    env, db_url = setup
    # 12 jobs at $0.01 with a $0.05 budget: the two workers together run 5 and stop.
    result = _arena(env, "run", "--workers", "2", "--max-cost", "0.05", "--samples", "2")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if ": budget_stopped; 2 workers," in x)
    run_id = line.split()[1].rstrip(":")
    jobs, attempts = _done_once(db_url, run_id)
    assert (jobs["status"] == "done").sum() == 5
    assert attempts["cost_usd"].sum() == pytest.approx(0.05)
    assert "raise --max-cost and run `arena run --resume" in result.stdout

    finished = _arena(env, "run", "--resume", run_id, "--workers", "2", "--max-cost", "1")
    assert finished.returncode == 0, finished.stderr
    assert f"run {run_id}: completed; 2 workers, 12 of 12 jobs done" in finished.stdout
    jobs, attempts = _done_once(db_url, run_id)
    assert set(jobs["status"]) == {"done"}
    assert attempts.groupby("job_id").size().max() == 1 and len(attempts) == 12
