"""output_checks on SQLite and PostgreSQL: rows saved, replaced on a second run, read beside the
model and provider of every output that returned the image."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from support.store import add_attempts, attempt_row, traffic_row

from arena import store
from arena.store.tables import OutputCheck

SAME = "a" * 64  # an unchanged source: identity@local and identity@other return the same bytes
OTHER = "b" * 64


def _attempts(engine):
    add_attempts(
        engine,
        [
            attempt_row(
                model="identity", provider="local", challenge="bald-man", image_sha256=SAME
            ),
            attempt_row(
                model="identity", provider="other", challenge="bald-man", image_sha256=SAME
            ),
            # The same bytes for a second challenge: a second output of identity@local.
            attempt_row(
                model="identity", provider="local", challenge="hair", image_sha256=SAME, attempt=2
            ),
            attempt_row(
                model="cartoon", provider="local", challenge="bald-man", image_sha256=OTHER
            ),
            # Not outputs: a warm-up, a failure, another run's, the gateway's traffic.
            attempt_row(model="warm", provider="local", image_sha256=OTHER, warmup=True),
            attempt_row(model="failed", provider="local", image_sha256=OTHER, ok=False),
            attempt_row(model="later", provider="local", image_sha256=OTHER, run_id="run-2"),
            traffic_row("req-1", model="app", image_sha256=SAME),
        ],
    )


def _row(sha, check, flagged, value, detail="d"):
    return {
        "image_sha256": sha,
        "check": check,
        "challenge": "bald-man",
        "flagged": flagged,
        "value": value,
        "threshold": 4.0,
        "detail": detail,
    }


def test_checks_round_trip_per_output_and_a_second_run_replaces(db_url):
    engine = store.open_engine(db_url)
    _attempts(engine)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    written = store.save_checks(
        engine,
        [_row(SAME, "unchanged", True, 0.0), _row(OTHER, "unchanged", False, 30.0)],
        checked_at=at,
    )
    assert written == 2
    frame = store.read_checks(engine, "run-test")
    assert frame["flagged"].dtype == bool
    got = sorted(
        (r.model, r.provider, r.challenge, r.check, r.flagged, r.value)
        for r in frame.itertuples(index=False)
    )
    assert got == [
        ("cartoon", "local", "bald-man", "unchanged", False, 30.0),
        ("identity", "local", "bald-man", "unchanged", True, 0.0),
        ("identity", "local", "hair", "unchanged", True, 0.0),
        ("identity", "other", "bald-man", "unchanged", True, 0.0),
    ]
    assert set(frame["check_challenge"]) == {"bald-man"}
    assert {"task", "category", "threshold", "detail", "checked_at"} <= set(frame.columns)
    # SQLite hands back naive UTC times, PostgreSQL aware ones: the same instant either way.
    assert (pd.to_datetime(frame["checked_at"], utc=True) == pd.Timestamp(at)).all()

    # Run again with other results: the same (image, check) is replaced, not added.
    store.save_checks(engine, [_row(OTHER, "unchanged", True, 1.0, detail="x" * 500)])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OutputCheck)).scalar() == 2
    cartoon = store.read_checks(engine).query("model == 'cartoon'")
    assert cartoon["flagged"].tolist() == [True] and cartoon["value"].tolist() == [1.0]
    assert len(cartoon["detail"].iloc[0]) == OutputCheck.__table__.c.detail.type.length
    # Every run's outputs: run-2's "later" returned OTHER too.
    assert set(store.read_checks(engine)["model"]) == {"cartoon", "identity", "later"}
    assert store.read_checks(engine, "run-2")["model"].tolist() == ["later"]


def test_a_value_may_be_missing_and_no_rows_is_an_empty_frame(db_url):
    engine = store.open_engine(db_url)
    assert store.read_checks(engine).empty
    assert store.save_checks(engine, []) == 0
    _attempts(engine)
    store.save_checks(engine, [{**_row(SAME, "faces", False, None), "threshold": None}])
    frame = store.read_checks(engine, "run-test")
    assert len(frame) == 3 and frame["value"].isna().all() and frame["threshold"].isna().all()


def test_read_checks_of_a_run_with_no_checks_is_empty(db_url):
    engine = store.open_engine(db_url)
    _attempts(engine)
    store.save_checks(engine, [_row(SAME, "blank", False, 70.0)])
    assert store.read_checks(engine, "run-none").empty
    assert not store.read_checks(engine, "run-test").empty
