"""Workers whose database connections are cut: by pg_terminate_backend mid-run, and just after a
claim or a slot's take committed (its reply lost): each recovers or exits cleanly, and every job
is done once."""

from __future__ import annotations

import time

import pytest
from support.pgproxy import CommitCutter
from support.processes import wait_until
from support.upstream import Upstream

from arena import store

from .kit import (
    DELAYS_S,
    MAX_CONCURRENCY,
    check_every_job_done_once,
    claims_by_pid,
    done_jobs,
    end_workers,
    peak_in_flight,
    plan_run,
    query,
    start_worker,
    worker_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _terminate_backends(engine, application_name: str) -> int:
    """pg_terminate_backend on every connection a worker has open; returns how many."""
    return len(
        query(
            engine,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :a",
            a=application_name,
        )
    )


def _check_exits(workers) -> None:
    """No traceback; exit 0, or 2 with one `arena: error:` line."""
    for worker in workers:
        output = worker.output()
        assert "Traceback" not in output, output
        assert worker.proc.returncode in (0, 2), output
        if worker.proc.returncode == 2:
            errors = [
                line
                for line in worker.stderr.read_text(errors="replace").splitlines()
                if line.startswith("arena: error:")
            ]
            assert len(errors) == 1, output


def test_a_worker_whose_database_connections_are_cut_recovers_or_exits_cleanly(
    tmp_path, postgres_url
):
    with Upstream(delays_s=DELAYS_S) as upstream:
        config, run_id, jobs = plan_run(tmp_path, base_url=upstream.url, db_url=postgres_url)
        engine = store.open_engine(postgres_url, create=False)
        names = [f"arena-cut-w{i}" for i in range(2)]
        workers = [
            start_worker(
                config,
                run_id,
                tmp_path,
                f"w{i}",
                env=worker_env(ARENA_DATABASE_URL=f"{postgres_url}&application_name={name}"),
            )
            for i, name in enumerate(names)
        ]
        try:
            wait_until(lambda: done_jobs(engine, run_id) >= 10, what="10 jobs done")
            assert claims_by_pid(engine, run_id).get(workers[0].pid)
            # Cut again and again for two seconds, so that cuts land inside transactions (a claim,
            # a slot's take, a turn, a batch of results, a heartbeat) and between them.
            cut = 0
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and workers[0].proc.poll() is None:
                cut += _terminate_backends(engine, names[0])
                time.sleep(0.1)
            assert cut >= 5
            for worker in workers:
                worker.proc.wait(timeout=240)
            if done_jobs(engine, run_id) < jobs:  # the cut one left with an error, after the other
                workers.append(start_worker(config, run_id, tmp_path, "w2"))
                workers[-1].proc.wait(timeout=240)
                assert workers[-1].proc.returncode == 0, workers[-1].output()
        finally:
            end_workers(workers)
        try:
            _check_exits(workers)
            assert store.get_run(engine, run_id).status == "completed"
            check_every_job_done_once(engine, run_id, jobs)
        finally:
            engine.dispose()
    assert peak_in_flight(upstream.log()) <= MAX_CONCURRENCY


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("WITH free_jobs AS", id="claim"),
        pytest.param("WITH free_slots AS", id="slot"),
    ],
)
def test_a_worker_whose_write_committed_but_whose_reply_was_lost_takes_it_back(
    tmp_path, postgres_url, statement
):
    """The connection drops right after the claim (or the slot's take) commits: the worker tries
    again, and finds what it already holds instead of keeping it from everyone, itself too."""
    with Upstream(delay_s=0.5) as upstream, CommitCutter(postgres_url, statement) as cutter:
        config, run_id, jobs = plan_run(
            tmp_path,
            base_url=upstream.url,
            db_url=postgres_url,
            models=["slow"],
            challenges=4,
            samples=6,
        )
        engine = store.open_engine(postgres_url, create=False)
        worker = start_worker(
            config,
            run_id,
            tmp_path,
            "w0",
            env=worker_env(ARENA_DATABASE_URL=cutter.url(postgres_url)),
        )
        try:
            # A claim it lost would stay pending and claimed for as long as it lives: it would
            # wait for it for ever.
            wait_until(
                lambda: worker.proc.poll() is not None, what="the worker to finish", within_s=90
            )
        finally:
            end_workers([worker])
        try:
            assert len(cutter.cut_at) == 1
            assert worker.proc.returncode == 0, worker.output()
            _check_exits([worker])
            assert store.get_run(engine, run_id).status == "completed"
            check_every_job_done_once(engine, run_id, jobs)
        finally:
            engine.dispose()
    # A slot it lost would leave it MAX_CONCURRENCY - 1 for the rest of the run.
    after = [s for s in upstream.log() if s.start_s > cutter.cut_at[0]]
    assert peak_in_flight(after) == MAX_CONCURRENCY
