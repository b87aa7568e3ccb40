"""Runs whose store fails part-way, for real: PostgreSQL taken away for seconds (its connections
terminated again and again, new ones refused), and a full disk (a small tmpfs). After the run, and
the resume when it stopped, every result the provider was paid for is saved, every job is done
exactly once, and no request was sent while the writer said the store was failing."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import POSTGRES_URL
from support.local import StampedLocalProvider, write_local_config
from support.store import read_jobs

from arena import store
from arena.app.runs import RunFailed, run_benchmark
from arena.config import load_settings
from arena.providers import protocol_facts
from arena.store.engine import engine_url

pytestmark = pytest.mark.slow  # seconds of outage, a loopback server, a mount

JOBS = 12 * 2 * 10  # write_local_config's defaults: 12 challenges x 2 models x 10 samples
# A request that passed the writer's check just before the store failed may arrive a moment
# after the writer said so; anything later was sent while the store was known to be failing.
IN_FLIGHT_GRACE_S = 0.3


class Outage:
    """A PostgreSQL database of the test's own that can be taken away: new connections refused
    (ALLOW_CONNECTIONS false) and its backends terminated every 50 ms, for `seconds`."""

    def __init__(self) -> None:
        self.name = f"arena_fault_{secrets.token_hex(4)}"
        self.admin = sa.create_engine(engine_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {self.name}"))
        self.url = (
            sa.engine.make_url(POSTGRES_URL)
            .set(database=self.name)
            .render_as_string(hide_password=False)
        )
        self.started = self.ended = None

    def _terminate(self, conn) -> None:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": self.name},
        )

    def take_away(self, seconds: float) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false"))
            self.started = time.time()
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                self._terminate(conn)
                time.sleep(0.05)  # the outage's own rhythm, not a wait for anything
            conn.execute(sa.text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true"))
            self.ended = time.time()

    def after(self, ready: threading.Event, seconds: float) -> threading.Thread:
        """Take the database away for `seconds` once `ready` is set (from another thread)."""

        def outage() -> None:
            if ready.wait(120):
                self.take_away(seconds)

        thread = threading.Thread(target=outage, name="postgres-outage", daemon=True)
        thread.start()
        return thread

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
        self.admin.dispose()


@pytest.fixture
def outage():
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL only: set ARENA_TEST_POSTGRES_URL (CI sets it)")
    outage = Outage()
    yield outage
    outage.drop()


class Counted:
    """on_result for run_benchmark: counts results and sets `ready` at the `at`-th."""

    def __init__(self, at: int) -> None:
        self.count, self.at = 0, at
        self.ready = threading.Event()

    def __call__(self, attempt) -> None:
        self.count += 1
        if self.count >= self.at:
            self.ready.set()


def _failing_windows(records, end: float) -> list[tuple[float, float]]:
    """(start, end) of each time the writer said the store was failing, from its log lines."""
    windows, start = [], None
    for record in records:
        message = record.getMessage()
        if "the store is failing" in message and start is None:
            start = record.created
        elif "the store is back" in message and start is not None:
            windows.append((start, record.created))
            start = None
    if start is not None:
        windows.append((start, end))
    return windows


def _sent_while_failing(arrivals, windows) -> list[float]:
    return [t for t in arrivals for a, b in windows if a + IN_FLIGHT_GRACE_S < t < b]


def _assert_every_paid_result_saved_once(db_url: str, local: StampedLocalProvider) -> None:
    engine = store.open_engine(db_url)
    jobs = read_jobs(engine)
    attempts = store.read_attempts(engine)
    engine.dispose()
    assert len(jobs) == JOBS and set(jobs["status"]) == {"done"}
    assert set(jobs["outcome"]) == {"success"}
    # Every request the provider answered is a saved attempt; no job was sent twice.
    assert local.replies == len(local.arrivals) == len(attempts) == JOBS
    assert attempts.groupby("job_id").size().max() == 1
    assert attempts.duplicated(["job_id", "attempt"]).sum() == 0


def _settings(tmp_path, local, db_url, store_retry_s, data_dir=None):
    cfg = write_local_config(
        tmp_path,
        base_url=local.base_url,
        db_url=db_url,
        data_dir=data_dir or tmp_path / "data",
        store_retry_s=store_retry_s,
    )
    return load_settings(cfg, protocols=protocol_facts())


def test_postgres_gone_for_5_s_mid_run_loses_nothing_and_sends_nothing_meanwhile(
    tmp_path, outage, caplog
):
    caplog.set_level(logging.WARNING, logger="arena.store")
    with StampedLocalProvider(delay_s=0.02) as local:
        settings = _settings(tmp_path, local, outage.url, store_retry_s=60)
        counted = Counted(at=40)
        outage_thread = outage.after(counted.ready, seconds=5)
        report = run_benchmark(settings, on_result=counted)
        finished = time.time()
        outage_thread.join(30)
    assert outage.ended is not None and outage.ended < finished, "the outage missed the run"
    assert report.status == "completed"
    windows = _failing_windows(caplog.records, finished)
    assert sum(b - a for a, b in windows) >= 3.0, windows  # the writer did see the outage
    assert _sent_while_failing(local.arrivals, windows) == []
    _assert_every_paid_result_saved_once(outage.url, local)
    assert counted.count == JOBS


def test_postgres_gone_past_the_bound_stops_the_run_and_resume_replays_the_spill(
    tmp_path, outage, caplog, temp_dir
):
    caplog.set_level(logging.WARNING, logger="arena.store")
    planned = []
    with StampedLocalProvider(delay_s=0.02) as local:
        settings = _settings(tmp_path, local, outage.url, store_retry_s=1.5)
        counted = Counted(at=40)
        outage_thread = outage.after(counted.ready, seconds=6)
        with pytest.raises(RunFailed) as stopped:
            run_benchmark(settings, on_result=counted, on_planned=lambda r, n: planned.append(r))
        stopped_at = time.time()
        message = str(stopped.value)
        run_id = planned[0]
        spill = settings.data_dir / "spill" / f"{run_id}.jsonl"
        assert spill.is_file(), message
        spilled = len(spill.read_text().splitlines())
        sent_before_resume = len(local.arrivals)
        outage_thread.join(60)
        assert outage.ended is not None and stopped_at < outage.ended, "the outage ended first"
        report = run_benchmark(settings, resume=run_id)
    assert "\n" not in message and "[SQL" not in message and "parameters" not in message
    assert f"run {run_id} stopped, not marked failed" in message  # the store was still away
    assert f"kept in {spill}" in message and f"arena run --resume {run_id}" in message
    assert spilled >= 1 and sent_before_resume < JOBS
    windows = _failing_windows(caplog.records, stopped_at)
    assert _sent_while_failing(local.arrivals[:sent_before_resume], windows) == []
    assert report.status == "completed" and not spill.exists()
    _assert_every_paid_result_saved_once(outage.url, local)


# --- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: a real filesystem that fills up (ENOSPC), mounted for the test."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"the full-disk test mounts a small tmpfs and could not ({done.stderr.strip()}); "
            "run the suite as root (CI does)",
            pytrace=False,
        )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path, leave_bytes: int) -> Path:
    filler = directory / "filler"
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave_bytes))
    return filler


def test_a_full_disk_mid_run_loses_nothing_and_resume_finishes_once_there_is_room(
    tmp_path, small_disk, temp_dir, caplog
):
    caplog.set_level(logging.WARNING, logger="arena.store")
    data_dir = small_disk / "data"
    db_url = f"sqlite:///{data_dir / 'arena.db'}"
    store.open_engine(db_url).dispose()  # the store exists; then the disk is nearly full
    filler = _fill(small_disk, leave_bytes=160_000)
    planned = []
    with StampedLocalProvider(delay_s=0.02) as local:
        settings = _settings(tmp_path, local, db_url, store_retry_s=1.5, data_dir=data_dir)
        with pytest.raises(RunFailed) as stopped:
            run_benchmark(settings, on_planned=lambda r, n: planned.append(r))
        stopped_at = time.time()
        message = str(stopped.value)
        run_id = planned[0]
        sent_before_resume = len(local.arrivals)
        assert "\n" not in message, message
        # SQLite's word for it, or the OS's when an image file is what did not fit.
        assert "disk is full" in message or "No space left on device" in message, message
        fallback = temp_dir / "arena-spill" / f"{run_id}.jsonl"
        assert f"kept in {fallback}" in message  # the data dir had no room for it
        assert "could not be written anywhere" not in message
        assert list((data_dir / "images").rglob("*.tmp*")) == []  # no half-written image stays
        windows = _failing_windows(caplog.records, stopped_at)
        assert windows and _sent_while_failing(local.arrivals, windows) == []
        assert sent_before_resume < JOBS

        filler.unlink()  # the user makes room
        report = run_benchmark(settings, resume=run_id)
    assert report.status == "completed" and not fallback.exists()
    _assert_every_paid_result_saved_once(db_url, local)
