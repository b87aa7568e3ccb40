"""The blind voting server: create_app(settings) builds one ASGI app with all its state on app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from arena import store, tuning
from arena.config import Settings, project_root
from arena.web import api, page
from arena.web.battles import ApiError, Voting
from arena.web.options import WebOptions, options_from_env
from arena.web.pool import load_pool
from arena.web.security import RateLimiter, Signer

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'",
    ),
]
log = logging.getLogger("arena.web")


class SecurityHeaders:
    """Adds the same hardening headers to every response (a raw ASGI wrapper: no per-request task)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, options: WebOptions | None = None) -> Starlette:
    """The voting app for these settings: opens the store, makes missing derivatives, loads the pool."""
    options = (options or WebOptions()).with_secret(settings.data_dir)
    engine = store.open_engine(settings.database_url)
    signer = Signer(options.secret)
    voting = Voting(
        engine=engine,
        settings=settings,
        options=options,
        signer=signer,
        pool=load_pool(engine, settings, options),
    )

    async def refresh(app: Starlette) -> None:
        """New outputs and votes reach sampling without a restart; a failed refresh keeps the old pool."""
        while True:
            await asyncio.sleep(options.refresh_s)
            try:
                voting.pool = await asyncio.to_thread(load_pool, engine, settings, options)
            except Exception as exc:  # the page keeps serving the last good pool
                log.warning("pool refresh failed: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        # The server's start-up applies the heap freeze, once: what comes later (pools, known
        # sessions) is small, and a forced collection after each refresh stopped the loop ~30 ms.
        with tuning.frozen_heap():
            task = asyncio.create_task(refresh(app))
            try:
                yield
            finally:
                task.cancel()
                await voting.db.aclose()
                engine.dispose()

    reports = Path(options.reports_dir) if options.reports_dir else project_root() / "reports"
    routes = [
        Route("/", page.battle_page, methods=["GET"]),
        Route("/api/health", api.health, methods=["GET"]),
        Route("/api/session", api.session, methods=["GET"]),
        Route("/api/battles", api.new_battle, methods=["POST"]),
        Route("/api/votes", api.vote, methods=["POST"]),
        Route("/api/openapi.json", api.openapi, methods=["GET"]),
        Route("/img/{battle_id}/{slot}", api.image, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Mount(
            "/leaderboard",
            StaticFiles(directory=reports, html=True, check_dir=False),
            name="leaderboard",
        ),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api.api_error,
            HTTPException: api.http_error,
            Exception: api.server_error,
        },
    )
    app.state.voting = voting
    app.state.signer = signer
    app.state.options = options
    app.state.limits = (
        RateLimiter(options.ip_per_min, options.rate_burst),
        RateLimiter(options.session_per_min, options.rate_burst),
    )
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env(config_path: str | None = None) -> Starlette:
    """The app from a config file (else $ARENA_CONFIG, ./arena.toml, the demo) and $ARENA_WEB_* options.

    Also a factory for any ASGI server: `uvicorn --factory arena.web:app_from_env`.
    """
    from arena.config import load_settings
    from arena.providers import protocol_facts

    return create_app(load_settings(config_path, protocols=protocol_facts()), options_from_env())
