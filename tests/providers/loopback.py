"""What the protocol fakes share (recorded calls, result files, failure modes switched per test), and
calling an adapter against one served on loopback the way the harness does."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.images import make_png

from arena.config import ProviderConfig
from arena.errors import ProviderError
from arena.harness import make_client, send_with_timeout
from arena.providers.base import ImageRequest, InputImage, ProviderReply, Stopwatch

KEY = "sk-test-0123456789abcdef"  # what the fakes expect; tests assert it never leaks into errors
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "providers"
HANG_S = (
    1.0  # a "hanging" reply outlasts every test timeout (<= 0.4 s), then lets the server shut down
)


RESULT_PNG = make_png(64, 48, (200, 60, 30))
SOURCE_A = InputImage(data=make_png(32, 32, (10, 200, 10)), mime="image/png", name="a.png")
SOURCE_B = InputImage(data=make_png(40, 30, (10, 10, 200)), mime="image/png", name="b.png")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def recorded(name: str, **values: str) -> dict:
    """A recorded reply shape from tests/data/providers with {placeholders} filled in."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return json.loads(text)


@dataclass
class Call:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: object = None


class TruncatedResponse(Response):
    """Declares a longer body than it sends: the connection breaks mid-transfer."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4000")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"data": [{"b64_json": "iVBO',
                "more_body": False,
            }
        )


class FakeProvider:
    """Base of the protocol fakes: records every call, serves result files, shared failure modes."""

    auth_header = "authorization"
    auth_value = f"Bearer {KEY}"
    # The provider's own reply to a wrong key: (status, JSON body), as its documentation shows it.
    bad_key_reply: tuple[int, dict] = (
        401,
        {"error": {"message": "missing or wrong key", "code": "unauthorized"}},
    )

    def __init__(self) -> None:
        self.base = ""
        self.reset()

    def reset(self, mode: str = "success", **options) -> None:
        self.mode = mode
        self.options = options
        self.calls: list[Call] = []
        self.jobs: dict[str, dict] = {}

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/files/{name}", self.serve_file), *self.routes()])

    def file_url(self, name: str = "out.png") -> str:
        return f"{self.base}/files/{name}"

    async def record(self, request: Request) -> object:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw
        self.calls.append(
            Call(
                request.method, request.url.path, request.url.query, dict(request.headers), payload
            )
        )
        return payload

    def calls_to(self, method: str, contains: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and contains in c.path]

    async def serve_file(self, request: Request) -> Response:
        await self.record(request)
        if self.mode == "expired":
            status = self.options.get("file_status", 404)
            return Response(
                "<Error><Code>AuthenticationFailed</Code></Error>",
                status_code=status,
                media_type="application/xml",
            )
        return Response(RESULT_PNG, media_type="image/png")

    def unauthorized(self, request: Request) -> Response | None:
        if request.headers.get(self.auth_header) != self.auth_value:
            status, body = self.bad_key_reply
            return JSONResponse(body, status_code=status)
        return None

    async def common_failure(self, request: Request) -> Response | None:
        """The failure modes every protocol shares, applied to the request that starts the work."""
        if self.mode == "echo_key":
            # Some providers quote the key they rejected; the adapter must not pass it on.
            text = f"Incorrect API key provided: {request.headers.get(self.auth_header, '')}"
            return JSONResponse(
                {"error": {"message": text, "code": "invalid_api_key"}}, status_code=401
            )
        if self.mode == "rate_limited":
            return JSONResponse(
                {"error": {"message": "Too many requests", "code": "rate_limit_exceeded"}},
                status_code=429,
                headers={"Retry-After": str(self.options.get("retry_after", 7))},
            )
        if self.mode == "server_error":
            return JSONResponse(
                {"error": {"message": "internal error", "code": "internal"}}, status_code=503
            )
        if self.mode == "malformed":
            return Response("{'data': [oops", media_type="application/json")
        if self.mode == "truncated":
            return TruncatedResponse()
        if self.mode == "hang":
            await asyncio.sleep(HANG_S)
            return JSONResponse({})
        return self.unauthorized(request)


@dataclass
class Outcome:
    """What the harness would see from one adapter call."""

    reply: ProviderReply | None
    error: ProviderError | None
    watch: Stopwatch
    elapsed_s: float = 0.0

    @property
    def failure(self) -> str | None:
        return self.error.failure_class if self.error else None


def call(
    adapter_class,
    base_url: str,
    request: ImageRequest,
    *,
    protocol: str,
    timeout_s: float = 3.0,
    poll_interval_s: float = 0.02,
    transport: str = "aiohttp",
    key: str = KEY,
) -> Outcome:
    """Run adapter.generate the way the harness does: inside asyncio.timeout, failures classified."""
    provider = ProviderConfig(
        name=f"test-{protocol}",
        protocol=protocol,
        base_url=base_url,
        api_key_env="TEST_KEY",
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s,
    )

    async def run() -> Outcome:
        client = make_client(provider, transport)
        adapter = adapter_class(provider, client, key)
        started = time.monotonic()
        try:
            # The harness's own call: its timeout, its classification, its wording of auth failures.
            reply, watch, error = await send_with_timeout(adapter, request)
            return Outcome(reply, error, watch, time.monotonic() - started)
        finally:
            await client.aclose()

    return asyncio.run(run())


def text_request(model_id: str, **fields) -> ImageRequest:
    return ImageRequest(
        task="text-to-image", prompt="a red fox in snow", model_id=model_id, **fields
    )


def edit_request(model_id: str, images=(SOURCE_A,), **fields) -> ImageRequest:
    return ImageRequest(
        task="edit", prompt="make it night", model_id=model_id, images=tuple(images), **fields
    )


def assert_sync_timing(outcome: Outcome) -> None:
    """Marks of a one-request protocol: sent <= ttfb <= download_start <= done."""
    watch = outcome.watch
    assert watch.sent_ns is not None
    marks = watch.marks_ns
    assert watch.sent_ns <= marks["ttfb"] <= marks["download_start"] <= marks["done"]
    assert 0 < watch.ms("done") <= outcome.elapsed_s * 1000 + 1


def assert_queue_timing(
    outcome: Outcome, interval_s: float, queue_polls: int, progress_polls: int
) -> None:
    """Marks of a queued protocol, and queue/processing times at least as long as the polls we made."""
    watch, reply = outcome.watch, outcome.reply
    marks = watch.marks_ns
    assert (
        watch.sent_ns
        <= marks["submit_ack"]
        < marks["started"]
        < marks["completed"]
        <= marks["ttfb"]
    )
    assert marks["ttfb"] <= marks["download_start"] <= marks["done"]
    # Each status poll is preceded by one interval of sleep: IN_QUEUE was seen queue_polls times.
    assert reply.queue_ms >= queue_polls * interval_s * 1000
    assert reply.processing_ms >= progress_polls * interval_s * 1000
    assert reply.queue_ms == pytest.approx(watch.ms("started", since="submit_ack"), rel=1e-6)
    assert reply.processing_ms == pytest.approx(watch.ms("completed", since="started"), rel=1e-6)
