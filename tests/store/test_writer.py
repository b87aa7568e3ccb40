"""The results writer when the store fails: held and retried, then spilled, then replayed once.

The faults are real: the attempts table renamed away by another connection (the database's own
error on both backends), a file where the images folder should be, a spill folder that is a file.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from support.images import make_png
from support.processes import wait_until

from arena import store
from arena.errors import StoreError
from arena.images import inspect_image
from arena.store.spill import spill_paths
from arena.store.tables import Job, Run

RUN_ID = "r1"


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    store.create_run(
        engine,
        Run(id=RUN_ID, status="running"),
        [
            Job(
                run_id="",
                challenge="c",
                task="text-to-image",
                model=f"m{i}",
                provider="p",
                model_id="m",
                sample=0,
            )
            for i in range(6)
        ],
    )
    yield engine
    engine.dispose()


def _job_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT id FROM jobs ORDER BY id"))]


def _attempt(job_id, number=1, ok=True, warmup=False, failure=None, sha=None):
    return SimpleNamespace(
        run_id=RUN_ID,
        job_id=None if warmup else job_id,
        attempt=number,
        warmup=warmup,
        challenge="c",
        task="text-to-image",
        category="",
        model="m",
        provider="p",
        started_at=datetime.now(UTC),
        ok=ok,
        failure_class=failure,
        status_code=None,
        error=None,
        generation_ms=12.5 if ok else None,
        cost_usd=0.01,
        image_sha256=sha,
    )


def _result(job_id, colour, **kwargs):
    data = make_png(32, 32, colour)
    info = inspect_image(data)
    return _attempt(job_id, sha=info.sha256, **kwargs), data, info


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def _rename(engine, old: str, new: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


class _Healths:
    """What a writer reported, in order, as the harness sees it."""

    def __init__(self, writer) -> None:
        self.seen: list[str] = []
        writer.watch_health(self.seen.append)


def test_results_the_store_refuses_are_held_and_saved_once_it_is_back(engine, tmp_path):
    jobs = _job_ids(engine)
    writer = store.StoreWriter(engine, tmp_path / "data", run_id=RUN_ID, retry_s=60)
    healths = _Healths(writer)
    _rename(engine, "attempts", "attempts_away")
    for i, job_id in enumerate(jobs[:4]):
        attempt, data, info = _result(job_id, (i, 0, 0))
        writer.submit(attempt, data, info, True)
    wait_until(lambda: writer.health == "failing", what="the writer to report the store failing")
    assert _count(engine, "SELECT count(*) FROM attempts_away") == 0
    _rename(engine, "attempts_away", "attempts")
    wait_until(lambda: writer.health == "healthy", what="the writer to see the store back")
    writer.close()
    assert healths.seen == ["healthy", "failing", "healthy"]
    assert _count(engine, "SELECT count(*) FROM attempts") == 4
    assert _count(engine, "SELECT count(*) FROM jobs WHERE status = 'done'") == 4
    assert _count(engine, "SELECT count(*) FROM images") == 4
    assert not any(p.is_file() for p in spill_paths(tmp_path / "data", RUN_ID))


def test_past_the_bound_results_are_spilled_and_a_replay_saves_them_exactly_once(
    engine, tmp_path, temp_dir, caplog
):
    data_dir = tmp_path / "data"
    jobs = _job_ids(engine)
    writer = store.StoreWriter(engine, data_dir, run_id=RUN_ID, retry_s=0.3)
    healths = _Healths(writer)
    _rename(engine, "attempts", "attempts_away")
    success = _result(jobs[0], (1, 2, 3))
    writer.submit(*success, True)
    writer.submit(_attempt(jobs[1], ok=False, failure="server_error"), None, None, True)
    # A rate-limited attempt that will be retried: kept, and its job stays pending.
    writer.submit(_attempt(jobs[2], ok=False, failure="rate_limited"), None, None, False)
    writer.submit(_attempt(None, warmup=True), None, None, False)
    wait_until(lambda: writer.health == "failed", what="the writer to give up")
    late = _result(jobs[3], (4, 5, 6))  # in flight when it gave up: straight to the spill
    writer.submit(*late, True)
    writer.close()
    assert healths.seen == ["healthy", "failing", "failed"]

    summary = writer.failure_summary()
    spill = data_dir / "spill" / f"{RUN_ID}.jsonl"
    assert "\n" not in summary and "[SQL" not in summary and "attempts" in summary
    assert f"5 results kept in {spill}" in summary
    lines = [json.loads(line) for line in spill.read_text().splitlines()]
    assert len(lines) == 5
    # The images were saved before the database refused: the lines name the files.
    with_images = [line["image"] for line in lines if line["image"]]
    assert [i["path"] for i in with_images] == [
        f"images/{success[2].sha256[:2]}/{success[2].sha256}.png",
        f"images/{late[2].sha256[:2]}/{late[2].sha256}.png",
    ]
    assert any("gave up on the store" in r.getMessage() for r in caplog.records)

    _rename(engine, "attempts_away", "attempts")
    kept = tmp_path / "spill-copy.jsonl"
    shutil.copy(spill, kept)
    assert store.replay_spill(engine, data_dir, RUN_ID) == 5
    assert not spill.exists()
    assert _count(engine, "SELECT count(*) FROM attempts") == 5
    assert _count(engine, "SELECT count(*) FROM attempts WHERE warmup") == 1
    done = _count(engine, "SELECT count(*) FROM jobs WHERE status = 'done'")
    assert done == 3  # the rate-limited job is still to do
    assert _count(engine, "SELECT count(*) FROM images") == 2
    # A crash after the commit and before the file was removed replays it again: nothing doubles.
    shutil.copy(kept, spill)
    assert store.replay_spill(engine, data_dir, RUN_ID) == 5
    assert _count(engine, "SELECT count(*) FROM attempts") == 5
    assert store.replay_spill(engine, data_dir, RUN_ID) == 0


def test_images_that_cannot_be_written_travel_in_the_spill_and_are_saved_on_replay(
    engine, tmp_path, temp_dir
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "images").write_text("not a folder")  # every image write fails (ENOTDIR)
    jobs = _job_ids(engine)
    writer = store.StoreWriter(engine, data_dir, run_id=RUN_ID, retry_s=0.2)
    first, second = _result(jobs[0], (9, 9, 9)), _result(jobs[1], (8, 8, 8))
    writer.submit(*first, True)
    writer.submit(*second, True)
    writer.close()
    assert writer.health == "failed"
    assert "Not a directory" in writer.failure_summary()
    assert _count(engine, "SELECT count(*) FROM attempts") == 0
    lines = [
        json.loads(line) for line in (data_dir / "spill" / "r1.jsonl").read_text().splitlines()
    ]
    assert [base64.b64decode(line["image"]["b64"]) for line in lines] == [first[1], second[1]]

    (data_dir / "images").unlink()
    assert store.replay_spill(engine, data_dir, RUN_ID) == 2
    for _, data, info in (first, second):
        saved = data_dir / "images" / info.sha256[:2] / f"{info.sha256}.png"
        assert saved.read_bytes() == data
    assert _count(engine, "SELECT count(*) FROM jobs WHERE status = 'done'") == 2


def test_a_spill_the_data_dir_cannot_take_goes_to_the_temp_dir_and_what_nothing_takes_is_said(
    engine, tmp_path, temp_dir
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "spill").write_text("not a folder")
    jobs = _job_ids(engine)
    _rename(engine, "attempts", "attempts_away")
    writer = store.StoreWriter(engine, data_dir, run_id=RUN_ID, retry_s=0)
    writer.submit(*_result(jobs[0], (7, 7, 7)), True)
    writer.close()
    fallback = temp_dir / "arena-spill" / f"{RUN_ID}.jsonl"
    assert f"1 result kept in {fallback}" in writer.failure_summary()
    assert len(fallback.read_text().splitlines()) == 1

    # Neither place can take it: the line says so and how many; nothing is dropped silently.
    (temp_dir / "arena-spill").rename(temp_dir / "moved")
    (temp_dir / "arena-spill").write_text("not a folder either")
    writer = store.StoreWriter(engine, data_dir, run_id=RUN_ID, retry_s=0)
    writer.submit(*_result(jobs[1], (6, 6, 6)), True)
    writer.submit(_attempt(jobs[2], ok=False, failure="timeout"), None, None, True)
    writer.close()
    summary = writer.failure_summary()
    assert "2 results could not be written anywhere" in summary
    assert "(File exists: " in summary and "sent again on resume" in summary

    (temp_dir / "arena-spill").unlink()
    (temp_dir / "moved").rename(temp_dir / "arena-spill")
    _rename(engine, "attempts_away", "attempts")
    assert store.replay_spill(engine, data_dir, RUN_ID) == 1
    assert not fallback.exists()
    assert _count(engine, "SELECT count(*) FROM jobs WHERE status = 'done'") == 1


def test_abandon_stops_waiting_for_the_store_and_spills_at_once(engine, tmp_path, temp_dir):
    jobs = _job_ids(engine)
    _rename(engine, "attempts", "attempts_away")
    writer = store.StoreWriter(engine, tmp_path / "data", run_id=RUN_ID, retry_s=600)
    writer.submit(_attempt(jobs[0], ok=False, failure="timeout"), None, None, True)
    wait_until(lambda: writer.health == "failing", what="the writer to report the store failing")
    started = time.monotonic()
    closing = threading.Thread(target=writer.close)
    closing.start()
    writer.abandon()  # a second Ctrl-C while the run's end is written
    closing.join(30)
    assert not closing.is_alive() and time.monotonic() - started < 30
    assert writer.health == "failed"
    assert "1 result kept" in writer.failure_summary()


def test_a_torn_last_line_is_reported_and_a_broken_line_elsewhere_is_named(
    engine, tmp_path, temp_dir, caplog
):
    data_dir = tmp_path / "data"
    jobs = _job_ids(engine)
    _rename(engine, "attempts", "attempts_away")
    writer = store.StoreWriter(engine, data_dir, run_id=RUN_ID, retry_s=0)
    writer.submit(_attempt(jobs[0], ok=False, failure="timeout"), None, None, True)
    writer.close()
    _rename(engine, "attempts_away", "attempts")
    spill = data_dir / "spill" / f"{RUN_ID}.jsonl"
    good = spill.read_bytes()
    spill.write_bytes(good + good[: len(good) // 2])  # a crash in the middle of the next line
    with caplog.at_level(logging.WARNING, logger="arena.store"):
        assert store.replay_spill(engine, data_dir, RUN_ID) == 1
    assert any("cut short" in r.getMessage() for r in caplog.records)
    assert _count(engine, "SELECT count(*) FROM attempts") == 1

    spill.write_bytes(b"{not json}\n" + good)
    with pytest.raises(StoreError, match=r"r1\.jsonl: line 1: not a spilled result"):
        store.replay_spill(engine, data_dir, RUN_ID)
    assert spill.exists()  # kept for the user to look at


@pytest.mark.slow  # a child process
def test_an_image_write_cut_short_leaves_no_temp_file(tmp_path):
    """A real short write: the child's file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) gives EFBIG."""
    images = tmp_path / "images"
    script = f"""
import errno, resource, signal
from arena.images import inspect_image, save_image
data = open({str(tmp_path / "big.png")!r}, "rb").read()
info = inspect_image(data)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    save_image({str(images)!r}, data, info)
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""
    from PIL import Image

    Image.effect_noise((128, 128), 100).convert("RGB").save(tmp_path / "big.png")
    assert (tmp_path / "big.png").stat().st_size > 4096
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "EFBIG", result.stdout + result.stderr
    assert [p.name for p in images.rglob("*") if p.is_file()] == []
