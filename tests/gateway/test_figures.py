"""The route figure cache over a real store: rows written show, the window and warm-ups are honoured,
both sources count, and a load that fails keeps the figures it had."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from arena import store
from arena.gateway.figures import RouteFigureCache
from arena.gateway.routing import RouteFigures
from arena.store.tables import Attempt


@pytest.fixture
def engine(db_url):
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def _write(engine, *rows):
    """Attempt rows: (model, provider, ok, generation_ms) plus optional age_days, warmup, source."""
    now = datetime.now(UTC)
    values = []
    for row in rows:
        model, provider, ok, ms, *rest = row
        extra = rest[0] if rest else {}
        values.append(
            {
                "run_id": "traffic" if extra.get("source") == "traffic" else "r1",
                "job_id": None,
                "attempt": 1,
                "warmup": extra.get("warmup", False),
                "challenge": "",
                "task": "text-to-image",
                "category": "",
                "model": model,
                "provider": provider,
                "started_at": now - timedelta(days=extra.get("age_days", 0.0)),
                "ok": ok,
                "failure_class": None if ok else "server_error",
                "generation_ms": ms,
                "source": extra.get("source", "benchmark"),
            }
        )
    with engine.begin() as conn:
        conn.execute(Attempt.__table__.insert(), values)


def test_the_cache_shows_the_rows_written(engine):
    cache = RouteFigureCache(engine, window_days=30)
    cache.load()
    assert cache.figures("m") == {}
    assert cache.loaded_at is not None and cache.last_error is None
    _write(engine, ("m", "a", True, 100.0), ("m", "a", True, 300.0), ("m", "b", False, None))
    _write(engine, ("n", "a", True, 50.0))
    assert cache.figures("m") == {}  # nothing read until the next load
    cache.load()
    assert cache.figures("m") == {
        "a": RouteFigures(2, 2, 200.0, 290.0),
        "b": RouteFigures(1, 0, None, None),
    }
    assert cache.figures("n") == {"a": RouteFigures(1, 1, 50.0, 50.0)}
    assert cache.figures("unknown") == {}
    assert cache.figures("m")["a"].score_ms == 200.0


def test_the_window_warmups_and_sources(engine):
    _write(
        engine,
        ("m", "a", True, 100.0),
        ("m", "a", False, None, {"source": "traffic"}),
        ("m", "a", True, 9000.0, {"age_days": 2.0}),  # before the window
        ("m", "a", True, 9000.0, {"warmup": True}),  # a warm-up: never measured
        ("m", "b", True, 400.0, {"age_days": 0.5, "source": "traffic"}),
    )
    cache = RouteFigureCache(engine, window_days=1)
    cache.load()
    assert cache.figures("m") == {
        "a": RouteFigures(2, 1, 100.0, 100.0),
        "b": RouteFigures(1, 1, 400.0, 400.0),
    }
    wide = RouteFigureCache(engine, window_days=30)
    wide.load()
    assert wide.figures("m")["a"].attempts == 3


def test_a_failing_load_keeps_the_figures_it_had(engine, caplog):
    _write(engine, ("m", "a", True, 100.0))
    cache = RouteFigureCache(engine, window_days=30)
    cache.load()
    kept = cache.figures("m")
    loaded_at = cache.loaded_at
    with engine.begin() as conn:  # the database's own error, on both backends
        conn.execute(sa.text("ALTER TABLE attempts RENAME TO attempts_away"))
    try:
        with pytest.raises(sa.exc.SQLAlchemyError):
            cache.load()
        assert cache.figures("m") == kept
        with caplog.at_level(logging.WARNING, logger="arena.gateway.figures"):
            assert asyncio.run(cache.refresh()) is False
        assert cache.figures("m") == kept and cache.loaded_at == loaded_at
        assert "route figures not refreshed" in caplog.text
        assert cache.last_error and "attempts" in cache.last_error
        assert "\n" not in cache.last_error
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE attempts_away RENAME TO attempts"))
    _write(engine, ("m", "a", False, None))
    assert asyncio.run(cache.refresh()) is True
    assert cache.figures("m")["a"] == RouteFigures(2, 1, 100.0, 100.0)
    assert cache.last_error is None


def test_run_refreshes_until_cancelled(engine):
    cache = RouteFigureCache(engine, window_days=30, refresh_s=0.02)

    async def scenario():
        task = asyncio.create_task(cache.run())
        try:
            for _ in range(500):  # first load: an empty store
                if cache.loaded_at is not None:
                    break
                await asyncio.sleep(0.01)
            assert cache.figures("m") == {}
            await asyncio.to_thread(_write, engine, ("m", "a", True, 120.0))
            for _ in range(500):
                if cache.figures("m"):
                    break
                await asyncio.sleep(0.01)
            assert cache.figures("m") == {"a": RouteFigures(1, 1, 120.0, 120.0)}
        finally:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
