"""A run killed with SIGKILL mid-flight, then resumed: every job done exactly once, none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from support import write_challenges, write_config
from support.store import done_jobs, read_jobs

from arena import store

pytestmark = pytest.mark.slow  # CLI runs in subprocesses


def test_kill_9_then_resume_last_leaves_every_job_exactly_once(tmp_path, fault_server, db_url):
    challenges = write_challenges(tmp_path / "challenges", 12)
    fault_server.delay_s = 0.25
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={"slow-ok": ["text-to-image"], "ok": ["text-to-image"]},
        challenges_dir=challenges,
        db_url=db_url,
        data_dir=tmp_path / "data",
        max_concurrency=2,
    )
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    cmd = [sys.executable, "-m", "arena.cli", "run", "--samples", "2"]
    # Output unread (a pipe nobody drains could fill and stall the run, and stays open after the kill).
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            done = done_jobs(db_url)
        except sa.exc.OperationalError:
            continue  # tables not created yet
        if done >= 8:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    total = 12 * 2 * 2
    assert 8 <= done < total, f"kill landed outside the run ({done} of {total} done)"
    after_kill = done_jobs(db_url)
    assert after_kill < total

    result = subprocess.run(
        [sys.executable, "-m", "arena.cli", "run", "--resume", "last"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout
    engine = store.open_engine(db_url)
    jobs = read_jobs(engine)
    attempts = store.read_attempts(engine)
    assert (
        len(jobs) == total
        and set(jobs["status"]) == {"done"}
        and set(jobs["outcome"]) == {"success"}
    )
    assert jobs["run_id"].nunique() == 1
    # Exactly once: one successful attempt per job, none for a job twice.
    per_job = attempts[attempts["ok"]].groupby("job_id").size()
    assert len(per_job) == total and per_job.max() == 1
    assert attempts.duplicated(["job_id", "attempt"]).sum() == 0
    runs = store.list_runs(engine)
    assert len(runs) == 1 and runs[0].status == "completed"


def test_ctrl_c_stops_cleanly_marks_the_run_interrupted_and_resume_finishes_it(
    tmp_path, fault_server, sqlite_url
):
    challenges = write_challenges(tmp_path / "challenges", 10)
    fault_server.delay_s = 0.3
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={"slow-ok": ["text-to-image"]},
        challenges_dir=challenges,
        db_url=sqlite_url,
        data_dir=tmp_path / "data",
        max_concurrency=1,
    )
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    # Ctrl-C as at a terminal: a shell starts background jobs (`scripts/test &`) with SIGINT ignored,
    # and the child would inherit that; give it the default disposition, as an interactive shell does.
    proc = subprocess.Popen(
        [sys.executable, "-m", "arena.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if done_jobs(sqlite_url) >= 2:
                break
        except sa.exc.OperationalError:
            continue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    runs = store.list_runs(store.open_engine(sqlite_url))
    assert runs[0].status == "interrupted"
    done = done_jobs(sqlite_url)
    assert 2 <= done < 10
    result = subprocess.run(
        [sys.executable, "-m", "arena.cli", "run", "--resume", "last"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert done_jobs(sqlite_url) == 10
