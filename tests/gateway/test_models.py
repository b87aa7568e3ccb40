"""GET /v1/models and /v1/models/{id}: every model with its tasks and starting price; one model's routes
with provider, model id, price, capabilities, measured figures and breaker state; and /health."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import openai
import pytest

from arena.gateway.routing import RouteFigures

from .kit import (
    FixedFigures,
    gateway_settings,
    make_key,
    running_gateway,
)


@pytest.fixture
def catalog(tmp_path, db_url):
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={
            "cheap": {"protocol": "openai", "base_url": "http://127.0.0.1:9/v1"},
            "fast": {"protocol": "openai", "base_url": "http://127.0.0.1:9/v1"},
            "local": {"protocol": "local"},
        },
        models={
            "gpt": {"routes": {"cheap": "gpt-image-1", "fast": "gpt-image-1"}, "price": 0.04},
            "identity": {"tasks": ["edit"], "routes": {"local": "identity"}, "price": 0.0},
        },
    )
    figures = FixedFigures({"gpt": {"fast": RouteFigures(40, 38, 5200.0, 9100.0)}})
    with running_gateway(settings, figures=figures) as (url, _):
        yield url, settings


def test_the_model_list(catalog):
    url, settings = catalog
    with openai.OpenAI(base_url=f"{url}/v1", api_key=make_key(settings)) as client:
        models = {m.id: m for m in client.models.list()}
    assert set(models) == {"gpt", "identity"}
    gpt = models["gpt"].model_dump()
    assert gpt["object"] == "model" and gpt["owned_by"] == "arena"
    assert gpt["providers"] == ["cheap", "fast"] and gpt["starting_price_usd"] == 0.04
    assert models["identity"].model_dump()["tasks"] == ["edit"]
    assert models["identity"].model_dump()["baseline"] is True


def test_one_models_routes(catalog):
    url, _ = catalog
    body = httpx.get(f"{url}/v1/models/gpt").json()
    assert body["id"] == "gpt" and body["starting_price_usd"] == 0.04
    routes = {r["provider"]: r for r in body["routes"]}
    fast = routes["fast"]
    assert fast["id"] == "fast/gpt" and fast["model_id"] == "gpt-image-1"
    assert fast["price_usd"] == 0.04 and fast["protocol"] == "openai"
    assert fast["capabilities"]["sizes"] == ["1024x1024", "1536x1024", "1024x1536", "auto"]
    assert fast["figures"]["attempts"] == 40 and fast["figures"]["p95_ms"] == 9100.0
    assert fast["figures"]["success_rate"] == pytest.approx(0.95)
    assert fast["figures"]["score_ms"] == pytest.approx(5200.0 / 0.95)
    assert routes["cheap"]["figures"] is None  # unmeasured
    assert fast["breaker"]["state"] == "closed"
    assert body["order"][0] in ("cheap", "fast") and set(body["order"]) == {"cheap", "fast"}
    assert body["policy"]["sort"] == "latency" and body["policy"]["allow_fallbacks"] is True
    pinned = httpx.get(f"{url}/v1/models/fast/gpt").json()
    assert [r["pinned"] for r in pinned["routes"]] == [False, True]
    missing = httpx.get(f"{url}/v1/models/dall-e-9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_health(catalog):
    url, _ = catalog
    reply = httpx.get(f"{url}/health")
    body = reply.json()
    assert reply.status_code == 200 and body["ok"] is True and body["models"] == 2
    assert set(body["loop_lag_ms"]) == {"samples", "p50", "p99", "max"}


def test_the_loop_lag_sees_a_stall():
    import asyncio
    import time

    from arena.gateway.lag import LoopLag

    lag = LoopLag(interval_s=0.01)
    assert lag.figures() == {"samples": 0, "p50": None, "p99": None, "max": None}

    async def stall_once() -> None:
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.1)
        time.sleep(0.2)  # the loop is blocked: the next timer fires ~200 ms late
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(stall_once())
    figures = lag.figures()
    assert figures["samples"] >= 5 and figures["max"] >= 150
    assert figures["p50"] < figures["max"]


def test_a_gateway_reads_the_route_figures_once_at_start(local_settings):
    """The lifespan's read before the first request is the refresh task's first: not read twice."""

    class CountingFigures(FixedFigures):
        loads = 0

        def load(self) -> None:
            CountingFigures.loads += 1
            super().load()
            self.loaded_at = datetime.now(UTC)

    with running_gateway(local_settings(), figures=CountingFigures({})) as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200
    assert CountingFigures.loads == 1
