"""/playground: try a model (or two side by side) in the browser, and the visitors' free daily allowance.

The pieces, wired into the gateway's app by create_app:

    secret = playground_secret(settings)
    keyring = VisitorKeyRing(keyring or KeyRing(engine), settings, secret)
    routes += playground_routes(settings, secret);  app.add_middleware(ClientAddress)

- playground_routes(settings, secret): GET /playground (the page), GET /playground/token (a fresh
  visitor token, for a page left open past midnight UTC) and /playground/static. The page calls the
  gateway's own /v1 endpoints with an `Authorization: Bearer` header, like any application.
- VisitorKeyRing(inner, settings, secret): a KeyRing that also takes `Bearer playground-<token>`
  when `[gateway] playground_budget_usd` > 0. A token is signed with the secret and bound to a keyed
  hash of the visitor's IP address and the UTC day; every other header goes to `inner`.
- ClientAddress (ASGI middleware) tells VisitorKeyRing the request's IP address (scope["client"]:
  behind a proxy, run the server with trusted proxy headers so that it is the visitor's).

Each visitor's spend lives in the store (store/visitors.py: a gateway_keys row per visitor per day),
so every gateway process sharing the database counts against the same allowance. Requests in flight
at once are checked against the spend settled so far: a visitor can overrun the allowance by the
requests they have in flight when they cross it, never more.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import ipaddress
import logging
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from arena import store
from arena.config import Settings, secret_in_file
from arena.gateway.auth import Grant
from arena.gateway.replies import GatewayError
from arena.store.visitors import add_visitor_spend, visitor_spend

HERE = Path(__file__).resolve().parent
log = logging.getLogger("arena.gateway")
TOKEN_PREFIX = "playground-"
SECRET_ENV = "ARENA_GATEWAY_SECRET"
VISITOR_NAME = "playground:"  # Grant.key_name = this + the visitor's short hash
# The page's own hardening: scripts and styles from this origin only; result images are shown
# from blob: URLs made of the reply's b64_json (or the gateway's own /v1/files URLs).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # the page carries the visitor's token
}

# The IP address of the request being served, set by ClientAddress for VisitorKeyRing.
client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "arena_gateway_client_address", default=None
)


def playground_secret(settings: Settings) -> str:
    """The secret that signs visitor tokens: $ARENA_GATEWAY_SECRET (several hosts set the same one),
    else data_dir/gateway-secret, made once and readable by us only (the workers of one host share it)."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    return secret_in_file(Path(settings.data_dir) / "gateway-secret")


def usd(amount: float) -> str:
    """ "$0.50", "$0.005": cents always, smaller fractions when there are any."""
    text = f"{amount:.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def utc_day() -> str:
    return datetime.now(UTC).date().isoformat()


def visitor_network(ip: str) -> str:
    """Who a visitor is: their IPv4 address, or their IPv6 /64 (one household's or host's prefix,
    inside which a client picks new addresses at will)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class VisitorPass:
    """Visitor tokens: HMACs keyed by the server secret, so every worker agrees without a lookup."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the playground needs a server secret to sign visitor tokens")
        self._key = secret.encode()

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.digest(self._key, f"{purpose}|{value}".encode(), "sha256").hex()

    def visitor(self, ip: str) -> str:
        """The visitor's short hash: keyed, so the store never holds an address or its plain hash."""
        return self._mac("visitor-ip", visitor_network(ip))[:12]

    def token(self, ip: str, day: str) -> str:
        """What the page sends as `Bearer playground-<token>`: valid from this IP on this UTC day."""
        return f"{day}.{self._mac('visitor-token', f'{day}|{self.visitor(ip)}')[:40]}"

    def check(self, token: str, ip: str, day: str) -> str | None:
        """The visitor's short hash when the token is genuine for this IP and day, else None."""
        if len(token) > 80 or "." not in token:
            return None
        token_day, _ = token.split(".", 1)
        if token_day != day:
            return None
        return self.visitor(ip) if hmac.compare_digest(token, self.token(ip, day)) else None


class ClientAddress:
    """ASGI middleware: puts the request's IP address where VisitorKeyRing reads it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        reset = client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            client_address.reset(reset)


class VisitorKeyRing:
    """KeyRing's interface (authorize, charge, aclose) with playground visitors added in front of `inner`.

    With `playground_budget_usd` == 0 a visitor token gets 401: the page then asks for a gateway key.
    Spend is shared through the store (one row per visitor per UTC day), not kept per process.
    """

    def __init__(
        self,
        inner,
        settings: Settings,
        secret: str,
        *,
        engine=None,
        today: Callable[[], str] = utc_day,
    ) -> None:
        self.inner = inner
        self.allowance_usd = float(settings.gateway.playground_budget_usd)
        self.passes = VisitorPass(secret)
        self.today = today
        self._own_engine = None
        if engine is None and self.allowance_usd > 0:
            engine = getattr(inner, "engine", None)
            if engine is None:
                engine = self._own_engine = store.open_engine(settings.database_url)
        self.engine = engine
        self._pending_usd: dict[str, float] = {}  # per row: charged, not yet written
        self._writes: set[asyncio.Task] = set()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # anything else a KeyRing has, the inner one answers

    async def authorize(
        self,
        authorization: str | None,
        *,
        expected_cost_usd: float | None = None,
        client_ip: str | None = None,
    ) -> Grant:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential.startswith(TOKEN_PREFIX):
            return await self.inner.authorize(authorization, expected_cost_usd=expected_cost_usd)
        if self.allowance_usd <= 0:
            raise GatewayError(
                401,
                "the playground's free allowance is off on this gateway: use a gateway key",
                code="invalid_api_key",
            )
        ip = client_ip or client_address.get()
        visitor = self.passes.check(credential[len(TOKEN_PREFIX) :], ip or "", self.today())
        if ip is None or visitor is None:
            raise GatewayError(
                401,
                "playground token not valid from this address today: reload /playground for a new one",
                code="invalid_api_key",
            )
        row = self._row(visitor)
        spent = await asyncio.to_thread(visitor_spend, self.engine, row, self.allowance_usd)
        spent += self._pending_usd.get(row, 0.0)
        expected = expected_cost_usd if expected_cost_usd and expected_cost_usd > 0 else 0.0
        if spent >= self.allowance_usd or spent + expected > self.allowance_usd + 1e-9:
            raise GatewayError(
                402,
                f"the playground's free allowance ({usd(self.allowance_usd)} per visitor per day) "
                f"is used up ({usd(spent)} spent, this request could cost {usd(expected)}): "
                "it renews at 00:00 UTC, or use a gateway key",
                code="budget_exceeded",
            )
        return Grant(key_name=VISITOR_NAME + visitor, playground=True)

    def charge(self, grant: Grant, cost_usd: float | None) -> None:
        if not getattr(grant, "playground", False):
            self.inner.charge(grant, cost_usd)
            return
        row = self._row(grant.key_name.removeprefix(VISITOR_NAME))
        cost = float(cost_usd) if cost_usd and math.isfinite(cost_usd) and cost_usd > 0 else 0.0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the event loop: write now
            add_visitor_spend(self.engine, row, cost)
            return
        self._pending_usd[row] = self._pending_usd.get(row, 0.0) + cost
        task = loop.create_task(asyncio.to_thread(add_visitor_spend, self.engine, row, cost))
        self._writes.add(task)
        task.add_done_callback(lambda done: self._written(done, row, cost))

    def _written(self, task: asyncio.Task, row: str, cost: float) -> None:
        self._writes.discard(task)
        left = self._pending_usd.get(row, 0.0) - cost
        if left > 1e-12:
            self._pending_usd[row] = left
        else:
            self._pending_usd.pop(row, None)
        if not task.cancelled() and task.exception() is not None:
            # the store refused the write: the spend is lost for the allowance, not the request
            log.warning("playground spend not written for %s: %s", row, task.exception())

    async def aclose(self) -> None:
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        await self.inner.aclose()
        if self._own_engine is not None:
            self._own_engine.dispose()

    def _row(self, visitor: str) -> str:
        return f"{VISITOR_NAME}{visitor}-{self.today()}"


def playground_routes(settings: Settings, secret: str) -> list[BaseRoute]:
    """The page, its token endpoint and its static files (arena/gateway/static)."""
    allowance_usd = float(settings.gateway.playground_budget_usd)
    passes = VisitorPass(secret)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def visitor_token(request: Request) -> str | None:
        if allowance_usd <= 0:
            return None
        ip = request.client.host if request.client else ""
        return TOKEN_PREFIX + passes.token(ip, utc_day())

    async def page(request: Request) -> Response:
        context = {
            "token": visitor_token(request),
            "allowance": usd(allowance_usd),
        }
        response = templates.TemplateResponse(request, "playground.html", context)
        response.headers.update(PAGE_HEADERS)
        return response

    async def token(request: Request) -> Response:
        body = {"token": visitor_token(request), "allowance_usd": allowance_usd, "day": utc_day()}
        return JSONResponse(body, headers=PAGE_HEADERS)

    return [
        Route("/playground", page, methods=["GET"]),
        Route("/playground/token", token, methods=["GET"]),
        Mount(
            "/playground/static",
            app=StaticFiles(directory=HERE / "static"),
            name="playground-static",
        ),
    ]
