"""One run, one executor: a run is executed only while its executor holds the lease "run:<id>", and
`arena nightly` holds "nightly:<config>"; a second executor gets one line naming the owner, exit 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from support import write_slow_config
from support.processes import wait_until
from support.store import done_jobs, put_lease, read_jobs

from arena import store
from arena.app.runs import run_benchmark
from arena.challenges import load_challenges
from arena.cli import main
from arena.config import load_settings
from arena.errors import RunError
from arena.harness import plan_jobs
from arena.providers import protocol_facts
from arena.store import leases
from arena.store.tables import Lease, Run

pytestmark = pytest.mark.slow  # every test runs against a loopback provider, some in subprocesses

OTHER_HOST = "elsewhere.example"
LINE = re.compile(
    r"arena: error: run (\S+) is being executed by pid (\d+) on host (\S+) \(heartbeat \d+ s ago\); "
    r"wait for it or stop it"
)


@pytest.fixture
def slow_setup(tmp_path, fault_server, db_url):
    """A config whose runs take a few seconds: `count` jobs at 0.3 s each, one at a time."""

    def make(count: int = 10):
        fault_server.delay_s = 0.3
        return write_slow_config(tmp_path, fault_server, db_url, count)

    return make


def _put_lease_at(db_url: str, name: str, **row) -> None:
    engine = store.open_engine(db_url)
    try:
        put_lease(engine, name, **row)
    finally:
        engine.dispose()


def _lease_rows(db_url: str, prefix: str) -> list[dict]:
    engine = store.open_engine(db_url, create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(Lease.__table__).where(Lease.__table__.c.name.like(f"{prefix}%"))
            ).all()
    except sa.exc.SQLAlchemyError:
        return []  # the database is not made yet
    finally:
        engine.dispose()
    return [dict(row._mapping) for row in rows]


def _arena(*args: str) -> list[str]:
    return [sys.executable, "-m", "arena.cli", *args]


def _planned_run(cfg) -> str:
    """A run planned into the store (as an interrupted run leaves it), every job pending."""
    settings = load_settings(cfg, protocols=protocol_facts())
    engine = store.open_engine(settings.database_url)
    run = store.create_run(
        engine,
        Run(id="20261201-000000-abcd", status="interrupted", config_source=str(cfg)),
        plan_jobs(settings, load_challenges(settings.challenges_dir)),
    )
    engine.dispose()
    return run.id


def test_a_second_run_on_the_same_run_is_refused_with_one_line_and_sends_nothing(
    slow_setup, fault_server, db_url
):
    cfg = slow_setup(10)
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    first = subprocess.Popen(
        _arena("run"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: _lease_rows(db_url, "run:"), what="the first run's lease")
    wait_until(lambda: done_jobs(db_url) >= 1, what="the first run's first result")
    fault_server.replying.clear()  # the first run is held mid-way while the second one tries
    try:
        second = subprocess.run(
            _arena("run", "--resume", "last"), env=env, capture_output=True, text=True, timeout=120
        )
        [lease] = _lease_rows(db_url, "run:")
    finally:
        fault_server.replying.set()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 2, second.stdout + second.stderr
    lines = second.stderr.strip("\n").splitlines()
    assert len(lines) == 1, second.stderr
    match = LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match.group(2) == str(first.pid) and match.group(3) == leases.this_host()
    assert lease["name"] == f"run:{match.group(1)}" and lease["pid"] == first.pid
    # Every request the provider saw is one of the first run's ten: the second sent none.
    engine = store.open_engine(db_url)
    attempts = store.read_attempts(engine)
    assert fault_server.requests == {"slow-ok": 10} and len(attempts) == 10
    assert set(read_jobs(engine)["status"]) == {"done"}
    assert _lease_rows(db_url, "run:") == []  # released at the end
    engine.dispose()


def test_resume_right_after_kill_9_takes_the_dead_owners_lease_at_once(
    slow_setup, fault_server, db_url
):
    cfg = slow_setup(10)
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    proc = subprocess.Popen(
        _arena("run"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(lambda: done_jobs(db_url) >= 2, what="two results of the run to be killed")
    fault_server.replying.clear()  # held mid-way, so it is still running when it is killed
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    fault_server.replying.set()
    [lease] = _lease_rows(db_url, "run:")
    assert lease["pid"] == proc.pid  # the dead owner's lease, its heartbeat still fresh
    started = time.monotonic()
    result = subprocess.run(
        _arena("run", "--resume", "last"), env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout
    # At once: the ten jobs take ~3 s; waiting out the ttl (30 s) would take far longer.
    assert time.monotonic() - started < store.DEFAULT_TTL_S
    engine = store.open_engine(db_url)
    assert set(read_jobs(engine)["status"]) == {"done"}
    engine.dispose()
    assert _lease_rows(db_url, "run:") == []


def test_an_expired_lease_of_another_host_is_taken_over(slow_setup, fault_server, db_url, capsys):
    cfg = slow_setup(3)
    fault_server.delay_s = 0.0
    run_id = _planned_run(cfg)
    _put_lease_at(db_url, f"run:{run_id}", host=OTHER_HOST, pid=4242, heartbeat_age_s=3600)
    assert main(["run", "--config", str(cfg), "--resume", run_id]) == 0
    assert f"run {run_id}: completed" in capsys.readouterr().out
    assert fault_server.requests == {"slow-ok": 3}
    assert _lease_rows(db_url, "run:") == []


def test_a_live_lease_of_another_host_is_refused_before_any_request(
    slow_setup, fault_server, db_url, capsys
):
    cfg = slow_setup(3)
    run_id = _planned_run(cfg)
    _put_lease_at(db_url, f"run:{run_id}", host=OTHER_HOST, pid=4242, heartbeat_age_s=5)
    assert main(["run", "--config", str(cfg), "--resume", "last"]) == 2
    err = capsys.readouterr().err
    assert err.strip("\n").splitlines() == [
        f"arena: error: run {run_id} is being executed by pid 4242 on host {OTHER_HOST} "
        "(heartbeat 5 s ago); wait for it or stop it"
    ]
    assert fault_server.requests == {}
    engine = store.open_engine(db_url)
    assert set(read_jobs(engine)["status"]) == {"pending"}
    assert store.get_run(engine, run_id).status == "interrupted"  # untouched
    engine.dispose()
    [lease] = _lease_rows(db_url, "run:")
    assert lease["host"] == OTHER_HOST  # the owner keeps it


def test_a_run_whose_lease_is_taken_over_stops_sending(slow_setup, fault_server, db_url):
    """Another executor takes the lease mid-run: this one sends nothing more once it notices."""
    cfg = slow_setup(12)
    settings = load_settings(cfg, protocols=protocol_facts())
    engine = store.open_engine(db_url)
    results = []

    def take_over_after_two(attempt) -> None:
        results.append(attempt)
        if len(results) == 2:
            with engine.begin() as conn:
                conn.execute(
                    Lease.__table__.update().values(
                        holder=f"{OTHER_HOST}:7:x", host=OTHER_HOST, pid=7
                    )
                )

    with pytest.raises(RunError) as stopped:
        run_benchmark(settings, on_result=take_over_after_two, lease_ttl_s=1.5)
    message = str(stopped.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"run (\S+) stopped sending: another executor took its lease over \(pid 7 on host "
        rf"{OTHER_HOST} \(heartbeat \d+ s ago\)\); (\d+) jobs? left pending for "
        r"`arena run --resume \1`",
        message,
    ), message
    sent = fault_server.requests["slow-ok"]
    # Noticed within one heartbeat (0.5 s) plus the request then in flight (0.3 s each).
    assert 2 <= sent <= 6, sent
    jobs = read_jobs(engine)
    assert (jobs["status"] == "pending").sum() == 12 - sent
    [lease] = _lease_rows(db_url, "run:")
    assert lease["host"] == OTHER_HOST  # the new owner's lease is not released by the old one
    run_id = re.match(r"run (\S+) ", message).group(1)
    assert store.get_run(engine, run_id).status == "running"  # the new owner's to write
    engine.dispose()


def test_a_run_that_cannot_renew_its_lease_sends_nothing_past_two_thirds_of_the_ttl(
    slow_setup, fault_server, db_url
):
    cfg = slow_setup(30)
    fault_server.delay_s = 0.1
    settings = load_settings(cfg, protocols=protocol_facts())
    engine = store.open_engine(db_url)
    ttl_s = 1.5
    broken: list[float] = []
    starts: list[float] = []

    def break_the_lease_table(attempt) -> None:
        starts.append(time.monotonic())  # ~0.1 s after the request went out
        if not broken:
            with engine.begin() as conn:  # every renewal now fails, as with a store that is down
                conn.execute(sa.text("ALTER TABLE leases RENAME TO leases_gone"))
            broken.append(time.monotonic())

    with pytest.raises(RunError) as stopped:
        run_benchmark(settings, on_result=break_the_lease_table, lease_ttl_s=ttl_s)
    assert "stopped sending: its lease could not be renewed for 1 s" in str(stopped.value)
    # The last renewal was at most one interval (ttl/3) before the break; nothing was sent after
    # 2/3 of the ttl from it, so well before anyone else could have taken the run.
    last_sent = max(starts) - fault_server.delay_s
    assert last_sent - broken[0] < ttl_s * 2 / 3 + 0.1
    assert fault_server.requests["slow-ok"] < 30
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE leases_gone RENAME TO leases"))
    assert store.get_run(engine, "last").status == "interrupted"
    engine.dispose()


def test_two_nightlies_make_one_run(slow_setup, db_url, tmp_path):
    cfg = slow_setup(8)
    env = {**os.environ, "ARENA_CONFIG": str(cfg)}
    first = subprocess.Popen(
        _arena("nightly", "--out", str(tmp_path / "site1")),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: _lease_rows(db_url, "nightly:"), what="the first night's lease")
    second = subprocess.run(
        _arena("nightly", "--out", str(tmp_path / "site2")),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert second.returncode == 2, second.stdout + second.stderr
    assert re.fullmatch(
        rf"arena: error: nightly: another night on {re.escape(str(cfg.resolve()))} is being run by "
        rf"pid {first.pid} on host {re.escape(leases.this_host())} \(heartbeat \d+ s ago\); "
        "wait for it or stop it",
        second.stderr.strip("\n"),
    )
    assert not (tmp_path / "site2").exists()
    engine = store.open_engine(db_url)
    assert len(store.list_runs(engine)) == 1
    engine.dispose()
    assert _lease_rows(db_url, "nightly:") == [] and _lease_rows(db_url, "run:") == []
