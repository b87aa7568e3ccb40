"""Leases on SQLite and PostgreSQL: acquire, renew, release, take-over of a gone holder, races, heartbeat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import wait_until
from support.store import put_lease

from arena import store
from arena.errors import StoreError
from arena.store import leases
from arena.store.tables import Lease

OTHER_HOST = "elsewhere.example"


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def _row(engine, name: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(Lease.__table__).where(Lease.__table__.c.name == name)).first()
    return dict(row._mapping) if row is not None else None


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_acquire_writes_the_holder_and_a_second_holder_is_refused_with_who_holds_it(engine):
    held = store.acquire_lease(engine, "run:a", ttl_s=30)
    assert held.holder.startswith(f"{leases.this_host()}:{os.getpid()}:")
    row = _row(engine, "run:a")
    assert (row["holder"], row["host"], row["pid"], row["ttl_s"]) == (
        held.holder,
        leases.this_host(),
        os.getpid(),
        30.0,
    )
    with pytest.raises(store.LeaseHeld) as refused:
        store.acquire_lease(engine, "run:a")  # this process is alive: its lease is not gone
    assert refused.value.holder.holder == held.holder
    assert refused.value.holder.describe() == (
        f"pid {os.getpid()} on host {leases.this_host()} (heartbeat 0 s ago)"
    )
    assert _row(engine, "run:a")["holder"] == held.holder
    other = store.acquire_lease(engine, "run:b")  # another name is another lease
    assert other.holder != held.holder


def test_renew_moves_the_heartbeat_on_the_databases_clock_and_release_frees_the_name(engine):
    held = store.acquire_lease(engine, "run:a")
    put_lease(engine, "run:a", host=held.host, pid=held.pid, heartbeat_age_s=20)
    with engine.begin() as conn:  # the row is ours again, with an old heartbeat
        conn.execute(Lease.__table__.update().values(holder=held.holder))
    assert store.read_holder(engine, "run:a").heartbeat_age_s == pytest.approx(20, abs=2)
    assert store.renew_lease(engine, held) is True
    assert store.read_holder(engine, "run:a").heartbeat_age_s < 2
    store.release_lease(engine, held)
    assert store.read_holder(engine, "run:a") is None
    assert store.acquire_lease(engine, "run:a").holder != held.holder


def test_an_expired_lease_of_another_host_is_taken_and_its_old_holder_cannot_renew_or_release(
    engine,
):
    put_lease(engine, "run:x", host=OTHER_HOST, pid=4242, heartbeat_age_s=31, ttl_s=30)
    stale = store.HeldLease("run:x", f"{OTHER_HOST}:4242:feedfacefeedface", OTHER_HOST, 4242, 30.0)
    held = store.acquire_lease(engine, "run:x")
    assert _row(engine, "run:x")["holder"] == held.holder
    assert store.read_holder(engine, "run:x").heartbeat_age_s < 2
    assert store.renew_lease(engine, stale) is False
    store.release_lease(engine, stale)  # a stale handle must not free the new holder's lease
    assert _row(engine, "run:x")["holder"] == held.holder


def test_a_live_lease_of_another_host_is_refused_whatever_its_pid(engine):
    # PID 1 on that host, or a PID that is dead here: another host's PIDs say nothing here.
    put_lease(engine, "run:x", host=OTHER_HOST, pid=_dead_pid(), heartbeat_age_s=25, ttl_s=30)
    with pytest.raises(store.LeaseHeld) as refused:
        store.acquire_lease(engine, "run:x")
    assert f"on host {OTHER_HOST} (heartbeat 25 s ago)" in refused.value.holder.describe()
    assert _row(engine, "run:x")["host"] == OTHER_HOST


def test_the_refusal_says_when_a_silent_owner_can_be_taken_over(engine):
    put_lease(engine, "run:x", host=OTHER_HOST, pid=4242, heartbeat_age_s=9, ttl_s=30)
    with pytest.raises(store.LeaseHeld) as refused:
        store.acquire_lease(engine, "run:x")
    assert refused.value.holder.advice() == "wait for it or stop it"  # within its beat
    put_lease(engine, "run:x", host=OTHER_HOST, pid=4242, heartbeat_age_s=22, ttl_s=30)
    with pytest.raises(store.LeaseHeld) as refused:
        store.acquire_lease(engine, "run:x")
    advice = re.fullmatch(
        r"its heartbeats have stopped: it can be taken over in (\d+) s",
        refused.value.holder.advice(),
    )
    assert advice and 1 <= int(advice.group(1)) <= 8  # 30 - 22, less the time the test took


def test_a_lease_of_a_dead_pid_on_this_host_is_taken_at_once(engine):
    pid = _dead_pid()
    put_lease(engine, "run:x", host=leases.this_host(), pid=pid, heartbeat_age_s=0)
    held = store.acquire_lease(engine, "run:x")
    assert _row(engine, "run:x")["holder"] == held.holder


def test_a_lease_of_our_own_pid_that_this_process_does_not_hold_is_a_dead_predecessors(engine):
    # A container restarted after a kill: arena is PID 1 again, on the same hostname.
    put_lease(engine, "run:x", host=leases.this_host(), pid=os.getpid(), heartbeat_age_s=0)
    held = store.acquire_lease(engine, "run:x")
    assert _row(engine, "run:x")["holder"] == held.holder
    with pytest.raises(store.LeaseHeld):  # the one this process does hold is alive
        store.acquire_lease(engine, "run:x")


def test_a_zombie_is_dead_and_a_live_process_is_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(
        lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
        what="the child to exit (a zombie until reaped)",
    )
    assert leases.pid_alive(proc.pid) is False
    proc.wait()
    assert leases.pid_alive(proc.pid) is False
    assert leases.pid_alive(os.getpid()) is True


@pytest.mark.parametrize("start", ["free", "expired"])
def test_of_many_racing_acquirers_exactly_one_wins(db_url, start):
    engine = store.open_engine(db_url)
    if start == "expired":
        put_lease(engine, "run:race", host=OTHER_HOST, pid=7, heartbeat_age_s=3600)
    racers = 8
    barrier = threading.Barrier(racers)
    won, refused, failed = [], [], []

    def race():
        barrier.wait()
        try:
            won.append(store.acquire_lease(engine, "run:race"))
        except store.LeaseHeld as exc:
            refused.append(exc.holder.holder)
        except Exception as exc:  # noqa: BLE001 - counted: a racer must win or be refused
            failed.append(repr(exc))

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failed == []
    assert len(won) == 1 and len(refused) == racers - 1
    assert set(refused) == {won[0].holder}
    assert _row(engine, "run:race")["holder"] == won[0].holder
    engine.dispose()


@pytest.mark.slow  # subprocesses
def test_racing_processes_exactly_one_wins(db_url, tmp_path):
    """Separate processes (their own connections, their own PIDs), released together by a file."""
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "from arena import store\n"
        "engine = store.open_engine(sys.argv[1])\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.005)\n"
        "try:\n"
        "    store.acquire_lease(engine, 'nightly:race')\n"
        "    print('won', flush=True)\n"
        "    sys.stdin.read()\n"  # hold it (alive) until the test has counted
        "except store.LeaseHeld:\n"
        "    print('refused', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, str(go)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    go.touch()
    answers = [proc.stdout.readline().strip() for proc in procs]
    for proc in procs:
        proc.communicate("", timeout=60)  # closes stdin: the winner lets go and exits
    assert sorted(answers) == ["refused", "refused", "refused", "won"]


def test_the_heartbeat_keeps_a_short_lease_alive(engine):
    held = store.acquire_lease(engine, "run:a", ttl_s=0.6)
    first = _row(engine, "run:a")["heartbeat_at"]
    seen = {first}
    heartbeat = store.Heartbeat(engine, held).start()
    try:
        wait_until(
            lambda: seen.add(_row(engine, "run:a")["heartbeat_at"]) or len(seen) >= 4,
            what="three renewals",
            within_s=30,
        )
        assert heartbeat.stop_reason() is None
        assert _row(engine, "run:a")["holder"] == held.holder
    finally:
        heartbeat.stop()


def test_the_heartbeat_says_stop_when_another_holder_took_the_lease(engine):
    held = store.acquire_lease(engine, "run:a", ttl_s=0.6)
    heartbeat = store.Heartbeat(engine, held).start()
    try:
        assert heartbeat.stop_reason() is None
        put_lease(engine, "run:a", host=OTHER_HOST, pid=99, heartbeat_age_s=0)
        wait_until(lambda: heartbeat.stop_reason() is not None, what="the lost lease", within_s=30)
        assert heartbeat.stop_reason() == (
            f"another executor took its lease over (pid 99 on host {OTHER_HOST} (heartbeat 0 s ago))"
        )
    finally:
        heartbeat.stop()


def test_the_heartbeat_says_stop_before_an_unrenewable_lease_could_expire(engine):
    """The store refuses every renewal (its table is gone): stop after 2/3 of the ttl, never later."""
    ttl_s = 1.5
    held = store.acquire_lease(engine, "run:a", ttl_s=ttl_s)
    heartbeat = store.Heartbeat(engine, held)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE leases"))
    heartbeat.start()
    try:
        wait_until(lambda: heartbeat.stop_reason() is not None, what="the stop", within_s=30)
        silent_s = leases.steady_clock() - held.renewed_at
        assert ttl_s * leases.STOP_AFTER_FRACTION < silent_s < ttl_s
        reason = heartbeat.stop_reason()
        assert reason.startswith("its lease could not be renewed for ")
        assert "leases" in reason and "\n" not in reason and "SELECT" not in reason
    finally:
        heartbeat.stop()


def test_stop_reason_follows_the_holders_own_clock():
    held = store.HeldLease.new("run:a", ttl_s=30)
    now = [held.renewed_at]
    heartbeat = store.Heartbeat(None, held, clock=lambda: now[0])  # never started: no renewals
    now[0] += 19.9
    assert heartbeat.stop_reason() is None
    now[0] += 0.2  # 20.1 s of 30 without a renewal: stop, ten seconds before anyone may take over
    assert "could not be renewed for 20 s" in heartbeat.stop_reason()


def test_a_new_runs_lease_is_written_with_its_plan_or_not_at_all(engine):
    from arena.store.tables import Job, Run

    def job() -> Job:
        return Job(challenge="c", task="text-to-image", model="m", provider="p", model_id="m")

    held = store.HeldLease.new("run:r1")
    store.create_run(engine, Run(id="r1"), [job()], lease=held)
    assert _row(engine, "run:r1")["holder"] == held.holder
    # A plan that cannot be stored (the same job twice) leaves no lease behind either.
    with pytest.raises(StoreError):
        store.create_run(engine, Run(id="r2"), [job(), job()], lease=store.HeldLease.new("run:r2"))
    assert _row(engine, "run:r2") is None
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs WHERE id = 'r2'")).scalar() == 0


def test_a_nightlys_lease_is_named_by_its_config_file_or_data_dir(tmp_path):
    from dataclasses import replace

    from arena.app.nightly import nightly_lease_name
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    settings = demo_settings(protocol_facts())
    config = tmp_path / "arena.toml"
    config.write_text("")
    assert nightly_lease_name(replace(settings, source=str(config))) == f"nightly:{config}"
    assert nightly_lease_name(settings) == f"nightly:{settings.data_dir}"
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    long_a = nightly_lease_name(replace(settings, source="(demo)", data_dir=deep / "a"))
    long_b = nightly_lease_name(replace(settings, source="(demo)", data_dir=deep / "b"))
    assert len(long_a) <= 200 and long_a != long_b and long_a.endswith("/a")
