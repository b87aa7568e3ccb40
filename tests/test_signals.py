"""Signals: SIGTERM stops a run like Ctrl-C (exit 143); an impatient second Ctrl-C still leaves the
run marked and its results kept; the resume hint names this run or none; `arena serve` finishes a
request in flight on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
from support import write_challenges, write_slow_config
from support.processes import start_server, stop, tail, wait_until
from support.servers import free_port
from support.store import done_jobs, read_jobs

from arena import store
from arena.cli import main

CLI = [sys.executable, "-m", "arena.cli"]


def _config(tmp_path, fault_server, db_url, count=10, extra=""):
    cfg = write_slow_config(tmp_path, fault_server, db_url, count)
    if extra:
        cfg.write_text(extra + "\n" + cfg.read_text())
    return cfg


def _start(cfg, log_path, *args):
    """`arena run` with Ctrl-C at its default (as under systemd or a terminal), stderr to a file."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [*CLI, "run", *args],
            env={**os.environ, "ARENA_CONFIG": str(cfg)},
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def _assert_each_job_done_once(db_url: str, count: int) -> None:
    engine = store.open_engine(db_url)
    jobs, attempts = read_jobs(engine), store.read_attempts(engine)
    engine.dispose()
    assert len(jobs) == count and set(jobs["status"]) == {"done"}
    assert attempts[attempts["ok"]].groupby("job_id").size().max() == 1
    assert attempts.duplicated(["job_id", "attempt"]).sum() == 0


@pytest.mark.slow
def test_sigterm_stops_a_run_like_ctrl_c_exit_143_and_resume_finishes_it(
    tmp_path, fault_server, db_url
):
    fault_server.delay_s = 0.3
    cfg = _config(tmp_path, fault_server, db_url)
    proc = _start(cfg, tmp_path / "run.log")
    wait_until(lambda: done_jobs(db_url) >= 2, what="two jobs done")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143, tail(tmp_path / "run.log")
    err = (tmp_path / "run.log").read_text()
    engine = store.open_engine(db_url)
    (run,) = store.list_runs(engine)
    engine.dispose()
    assert run.status == "interrupted"
    assert f"finish with `arena run --resume {run.id}`" in err and "Traceback" not in err
    assert 2 <= done_jobs(db_url) < 10
    resumed = subprocess.run(
        [*CLI, "run", "--resume", run.id],
        env={**os.environ, "ARENA_CONFIG": str(cfg)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    _assert_each_job_done_once(db_url, 10)


@pytest.mark.slow
def test_ctrl_c_again_while_a_failing_store_is_awaited_keeps_the_results_and_marks_the_run(
    tmp_path, fault_server, sqlite_url
):
    fault_server.delay_s = 0.2
    cfg = _config(tmp_path, fault_server, sqlite_url, extra="store_retry_s = 600")
    log_path = tmp_path / "run.log"
    proc = _start(cfg, log_path)
    wait_until(lambda: done_jobs(sqlite_url) >= 2, what="two jobs done")
    engine = store.open_engine(sqlite_url)
    with engine.begin() as conn:  # the store refuses attempts from now on (the runs table works)
        conn.execute(sa.text("ALTER TABLE attempts RENAME TO attempts_away"))
    wait_until(lambda: "the store is failing" in log_path.read_text(), what="the writer to fail")
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: "Ctrl-C again" in log_path.read_text(), what="the run to wait for the store")
    proc.send_signal(signal.SIGINT)  # not another 600 s: spill what is held, and end
    assert proc.wait(60) == 130, tail(log_path)
    err = log_path.read_text()
    (run,) = store.list_runs(engine)
    assert run.status == "failed", err  # not left `running`
    spill = tmp_path / "data" / "spill" / f"{run.id}.jsonl"
    assert spill.is_file() and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"arena: interrupted; run {run.id} stopped, marked failed: ")
    assert last.endswith(f"kept in {spill}; finish with `arena run --resume {run.id}`"), last
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE attempts_away RENAME TO attempts"))
    engine.dispose()
    resumed = subprocess.run(
        [*CLI, "run", "--resume", "last"],
        env={**os.environ, "ARENA_CONFIG": str(cfg)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not spill.exists()
    _assert_each_job_done_once(sqlite_url, 10)


def test_ctrl_c_before_the_plan_is_stored_names_no_older_run(
    tmp_path, fault_server, sqlite_url, monkeypatch, capsys
):
    cfg = _config(tmp_path, fault_server, sqlite_url, count=2)
    monkeypatch.setenv("ARENA_CONFIG", str(cfg))
    fault_server.delay_s = 0.0
    assert main(["run"]) == 0  # an older run, which a hint must not point at
    capsys.readouterr()

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the challenges are read, before any plan

    monkeypatch.setattr("arena.app.runs.load_challenges", pressed)
    assert main(["run"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "arena: interrupted", err
    assert "--resume" not in err
    assert len(store.list_runs(store.open_engine(sqlite_url))) == 1


def test_ctrl_c_after_the_plan_is_stored_names_this_run(
    tmp_path, fault_server, sqlite_url, monkeypatch, capsys
):
    cfg = _config(tmp_path, fault_server, sqlite_url, count=2)
    monkeypatch.setenv("ARENA_CONFIG", str(cfg))
    assert main(["run"]) == 0
    capsys.readouterr()

    async def pressed(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C as the harness starts

    monkeypatch.setattr("arena.app.runs.Harness.execute", pressed)
    assert main(["run"]) == 130
    err = capsys.readouterr().err
    runs = store.list_runs(store.open_engine(sqlite_url))
    newest = runs[0]
    assert len(runs) == 2 and newest.status == "interrupted"
    last = err.strip().splitlines()[-1]
    assert last == f"arena: interrupted; finish with `arena run --resume {newest.id}`"


@pytest.mark.slow
def test_serve_finishes_the_request_in_flight_on_sigterm(tmp_path, sqlite_url):
    write_challenges(tmp_path / "challenges", 1)
    cfg = tmp_path / "arena.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{sqlite_url}"\n'
        f'challenges_dir = "{tmp_path / "challenges"}"\n'
        '[providers.local]\nprotocol = "local"\n'
        '[models.m]\ntasks = ["text-to-image"]\n[models.m.providers.local]\nmodel_id = "palette"\n'
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(
        [*CLI, "serve", "--config", str(cfg), "--port", str(port)],
        health_url=base + "/api/health",
        log_path=tmp_path / "serve.log",
        cwd=tmp_path,
    )
    try:
        with httpx.Client(base_url=base, trust_env=False) as client:
            session = client.get("/api/session")
            cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
            token = session.json()["csrf_token"]
        body = b'{"battle_id": "' + b"a" * 32 + b'", "choice": "a"}'
        head = (
            f"POST /api/votes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {base}\r\n"
            f"Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head + body[:10])  # a slow client: the vote is in flight
            time.sleep(0.5)  # let the server start reading it (no signal to wait on from outside)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
            else:
                raise AssertionError(f"exited {proc.returncode}: {tail(tmp_path / 'serve.log')}")
            sock.sendall(body[10:])
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        proc.wait(30)
    finally:
        stop(proc)
    status_line = reply.split(b"\r\n", 1)[0]
    # The vote went through the app to the end: an unknown battle, answered in full.
    assert status_line == b"HTTP/1.1 404 Not Found", reply[:300]
    assert reply.endswith(b"}")
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
