"""The harness end to end against a loopback server that misbehaves: every fault is a classified result."""

from __future__ import annotations

import pandas as pd
import pytest
from support import write_config
from support.store import read_jobs

from arena import store
from arena.app.runs import run_benchmark
from arena.config import load_settings
from arena.providers import protocol_facts

BOTH = ["text-to-image", "edit"]


def _run(tmp_path, fault_server, challenge_dir, db_url, models, **kwargs):
    run_kwargs = {k: kwargs.pop(k) for k in ("max_cost_usd", "resume") if k in kwargs}
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models=models,
        challenges_dir=challenge_dir,
        db_url=db_url,
        data_dir=tmp_path / "data",
        **kwargs,
    )
    settings = load_settings(cfg, protocols=protocol_facts())
    report = run_benchmark(settings, **run_kwargs)
    engine = store.open_engine(db_url)
    return (
        report,
        store.read_attempts(engine, include_warmup=True),
        read_jobs(engine),
        settings,
    )


def test_every_fault_gets_its_failure_class_and_the_run_completes(
    tmp_path, fault_server, challenge_dir, db_url
):
    faults = {
        "ok": None,
        "server-error": "server_error",
        "hang": "timeout",
        "truncated": "network",
        "invalid-json": "bad_response",
        "not-image": "invalid_image",
        "bomb": "invalid_image",
        "empty": "empty_output",
        "no-data": "bad_response",
        "refuse": "refused",
        "unknown-model": "client_error",
    }
    report, attempts, jobs, _ = _run(
        tmp_path,
        fault_server,
        challenge_dir,
        db_url,
        {name: BOTH for name in faults},
        timeout_s=1.0,
    )
    assert report.status == "completed"
    assert len(jobs) == 2 * len(faults) and set(jobs["status"]) == {"done"}
    for model, expected in faults.items():
        rows = attempts[attempts["model"] == model]
        assert len(rows) == 2, model
        if expected is None:
            assert rows["ok"].all() and rows["failure_class"].isna().all()
            assert (rows["width"] == 64).all() and (rows["format"] == "PNG").all()
            assert (rows["generation_ms"] > 0).all() and (
                rows["ttfb_ms"] <= rows["generation_ms"]
            ).all()
        else:
            assert set(rows["failure_class"]) == {expected}, (model, rows["error"].tolist())
            assert not rows["ok"].any() and rows["generation_ms"].isna().all()
            assert rows["error"].str.len().gt(0).all()
    hang = attempts[attempts["model"] == "hang"]
    assert hang["error"].str.contains("1 s").all()
    assert report.outcome.failures["invalid_image"] == 4


def test_successful_images_are_stored_once_by_sha256(tmp_path, fault_server, challenge_dir, db_url):
    _, attempts, jobs, settings = _run(tmp_path, fault_server, challenge_dir, db_url, {"ok": BOTH})
    shas = set(attempts["image_sha256"])
    assert len(shas) == 1  # the server returns the same PNG every time
    sha = shas.pop()
    files = list((settings.data_dir / "images").rglob("*.png"))
    assert [f.name for f in files] == [f"{sha}.png"]
    import hashlib

    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == sha
    assert set(jobs["image_sha256"]) == {sha}


def test_rate_limited_reply_is_retried_after_retry_after_and_every_attempt_recorded(
    tmp_path, fault_server, challenge_dir, db_url
):
    _, attempts, jobs, _ = _run(
        tmp_path,
        fault_server,
        challenge_dir,
        db_url,
        {"rate-limit-once": BOTH, "always-429": ["text-to-image"]},
        max_retries=2,
    )
    once = attempts[attempts["model"] == "rate-limit-once"].sort_values(["challenge", "attempt"])
    for _, rows in once.groupby("challenge"):
        assert rows["attempt"].tolist() == [1, 2]
        assert rows["failure_class"].tolist()[0] == "rate_limited" and rows["ok"].tolist() == [
            False,
            True,
        ]
        assert rows["retry_after_s"].iloc[0] == pytest.approx(0.2)
        gap = (rows["started_at"].iloc[1] - rows["started_at"].iloc[0]).total_seconds()
        assert gap >= 0.19  # honoured Retry-After before the retry
    always = attempts[attempts["model"] == "always-429"]
    assert always["attempt"].tolist() == [1, 2, 3] and set(always["failure_class"]) == {
        "rate_limited"
    }
    job = jobs[jobs["model"] == "always-429"].iloc[0]
    assert job["status"] == "done" and job["outcome"] == "rate_limited" and job["attempts"] == 3
    ok_jobs = jobs[jobs["model"] == "rate-limit-once"]
    assert set(ok_jobs["outcome"]) == {"success"} and set(ok_jobs["attempts"]) == {2}


def test_slow_headers_within_timeout_succeed_and_ttfb_reflects_the_wait(
    tmp_path, fault_server, challenge_dir, db_url
):
    fault_server.delay_s = 0.4
    _, attempts, _, _ = _run(
        tmp_path, fault_server, challenge_dir, db_url, {"slow-headers": ["text-to-image"]}
    )
    row = attempts.iloc[0]
    assert row["ok"]
    # The status line arrives in pieces over ~0.4 s: TTFB counts until the headers are complete.
    assert row["ttfb_ms"] >= 300 and row["generation_ms"] >= row["ttfb_ms"]


def test_warmup_is_recorded_but_excluded_from_stats(tmp_path, fault_server, challenge_dir, db_url):
    from arena import stats

    _, attempts, _, settings = _run(
        tmp_path, fault_server, challenge_dir, db_url, {"ok": BOTH}, warmup=True
    )
    assert attempts["warmup"].sum() == 1 and attempts[attempts["warmup"]]["job_id"].isna().all()
    table = stats.provider_table(store.read_attempts(store.open_engine(db_url)))
    assert table.iloc[0]["n"] == 2


def test_max_cost_stops_scheduling_before_the_budget_is_passed(
    tmp_path, fault_server, challenge_dir, db_url
):
    models = {f"ok{i}": BOTH for i in range(1)} | {"ok": BOTH}
    report, attempts, jobs, settings = _run(
        tmp_path,
        fault_server,
        challenge_dir,
        db_url,
        {"ok": BOTH},
        price=0.04,
        max_cost_usd=0.05,
        max_concurrency=1,
    )
    del models
    assert report.status == "budget_stopped" and report.outcome.budget_stopped
    assert len(attempts) == 1 and attempts["cost_usd"].sum() == pytest.approx(0.04)
    assert (jobs["status"] == "pending").sum() == 1
    # Resuming with a larger budget finishes the rest, and nothing is done twice.
    report2 = run_benchmark(settings, resume=report.run_id, max_cost_usd=1.0)
    assert report2.status == "completed"
    final = read_jobs(store.open_engine(db_url))
    assert set(final["status"]) == {"done"}
    assert len(store.read_attempts(store.open_engine(db_url))) == 2


def test_resume_of_completed_or_unknown_run_is_a_clear_error(
    tmp_path, fault_server, challenge_dir, db_url
):
    from arena.errors import RunError

    report, _, _, settings = _run(tmp_path, fault_server, challenge_dir, db_url, {"ok": BOTH})
    with pytest.raises(RunError, match="already completed"):
        run_benchmark(settings, resume=report.run_id)
    with pytest.raises(RunError, match="no run with id 'nope'"):
        run_benchmark(settings, resume="nope")


def test_no_failure_escapes_as_an_exception_and_attempts_frame_has_utc_times(
    tmp_path, fault_server, challenge_dir, sqlite_url
):
    _, attempts, _, _ = _run(tmp_path, fault_server, challenge_dir, sqlite_url, {"ok": BOTH})
    assert str(attempts["started_at"].dt.tz) == "UTC"
    assert isinstance(attempts["started_at"].iloc[0], pd.Timestamp)
