"""The gateway: an OpenAI-compatible images API in front of every provider, routed by what arena measured.

create_app(settings) builds one ASGI app (Starlette, the voting server's stack) with its state on
app.state.gateway. Its modules, each one concern:

    api         the endpoints: generations, edits, models, health, files; the error wrapper
    replies     GatewayError and OpenAI's error shape; the reply body and headers of a success
    requests    a generations / edits request (JSON or multipart) read and checked into arena's words
    routing     the order a model's routes are tried in: a RoutePolicy over measured figures (pure)
    breaker     one circuit breaker per route: closed, open, half-open
    figures     each route's success-weighted latency over the window, read from the store and cached
    forwarding  one request through its routes: fallback on retryable failures, every attempt judged
    traffic     every upstream attempt written to the attempts table (source "traffic")
    auth        gateway keys: the Bearer check, budgets, rates and spend (store/keys.py keeps them)
    files       response_format=url: images served at /v1/files/{opaque id} until they expire
    lag         the event loop's lag over the last minute, in GET /health
    playground  /playground: try a model (or two side by side) in the browser
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from arena import store, tuning
from arena.config import Settings
from arena.gateway import api
from arena.gateway.auth import KeyRing
from arena.gateway.breaker import Breakers
from arena.gateway.figures import RouteFigureCache
from arena.gateway.files import FileStore, serve_file
from arena.gateway.forwarding import Forwarder
from arena.gateway.lag import LoopLag
from arena.gateway.playground import (
    ClientAddress,
    VisitorKeyRing,
    playground_routes,
    playground_secret,
)
from arena.gateway.traffic import TrafficLog

__all__ = ["app_from_env", "create_app"]


def create_app(
    settings: Settings,
    *,
    keyring: KeyRing | None = None,
    breakers: Breakers | None = None,
    figures: RouteFigureCache | None = None,
) -> Starlette:
    """The gateway for these settings: opens the store (upgrading it); the lifespan starts the local
    providers, the clients, the figures' refresh, the traffic writer and the files' sweep."""
    gateway = settings.gateway
    engine = store.open_engine(settings.database_url)
    secret = playground_secret(settings)
    # a playground visitor's token is the visitor ring's; every other key goes to the key ring
    keyring = VisitorKeyRing(keyring or KeyRing(engine), settings, secret)
    breakers = breakers or Breakers.from_settings(gateway)
    figures = figures or RouteFigureCache(engine, gateway.window_days)
    traffic = TrafficLog(
        engine,
        settings.data_dir,
        keep_outputs=gateway.keep_outputs,
        retry_s=settings.store_retry_s,
    )
    forwarder = Forwarder(settings, breakers, figures, traffic)
    files = FileStore(settings.data_dir / "gateway-files", gateway.file_ttl_s, gateway.public_url)
    lag = LoopLag()
    state = api.GatewayState(settings, forwarder, keyring, files, lag)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from arena.providers.local import started_local_providers

        local = contextlib.ExitStack()  # started and stopped in a thread: each waits for a server
        tasks: list[asyncio.Task] = []
        try:
            urls = await asyncio.to_thread(local.enter_context, started_local_providers(settings))
            await asyncio.to_thread(traffic.start)
            forwarder.start(urls)
            # read before the first request; on failure routing starts unmeasured (config
            # order, a warning logged) and the refresh task tries again
            await figures.refresh()
            # As the voting server: what lives for the process is frozen out of the collector's
            # passes. As a benchmark run: the image-check and traffic threads hand the GIL back
            # within 0.5 ms, not 5, when a reply wakes the loop.
            with tuning.frozen_heap(), tuning.switch_interval(tuning.TIMING_SWITCH_INTERVAL_S):
                tasks = [
                    asyncio.create_task(figures.run()),
                    asyncio.create_task(files.run()),
                    asyncio.create_task(lag.run()),
                ]
                yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await forwarder.aclose()
            await keyring.aclose()
            await asyncio.to_thread(traffic.close)
            await asyncio.to_thread(local.close)
            engine.dispose()

    wrap = api.endpoint
    routes = [
        Route("/v1/images/generations", wrap(api.generations), methods=["POST"]),
        Route("/v1/images/edits", wrap(api.edits), methods=["POST"]),
        Route("/v1/models", wrap(api.list_models), methods=["GET"]),
        Route("/v1/models/{model_id:path}", wrap(api.get_model), methods=["GET"]),
        Route("/v1/files/{file_id}", wrap(serve_file), methods=["GET"]),
        Route("/health", wrap(api.health), methods=["GET"]),
        *playground_routes(settings, secret),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: api.http_error}
    )
    app.state.gateway = state
    app.add_middleware(ClientAddress)  # the visitor's address, for the playground's tokens
    return app


def app_from_env(config_path: str | None = None) -> Starlette:
    """The gateway from a config file (else $ARENA_CONFIG, ./arena.toml, the demo).

    Also a factory for any ASGI server: `uvicorn --factory arena.gateway:app_from_env`, and what
    each worker of `arena gateway --workers N` builds.
    """
    from arena.config import load_settings
    from arena.providers import protocol_facts

    return create_app(load_settings(config_path, protocols=protocol_facts()))
