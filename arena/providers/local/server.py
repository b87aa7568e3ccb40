"""The built-in `local` baseline provider: an OpenAI-images-compatible HTTP server on loopback.

It serves the baseline models of models.py, labelled as baselines wherever shown.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import threading
import time
from collections import OrderedDict

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arena.errors import ConfigError, ImageError
from arena.params import (
    DEFAULT_AREA_PX,
    RATIO_RE,
    Capabilities,
    is_auto,
    parse_ratio,
    requested_pixels,
    tier_dimensions,
)
from arena.providers.local.adapter import MAX_SIDE_PX, MIN_SIDE_PX
from arena.providers.local.models import EDIT_MODELS, GENERATION_MODELS, run_model

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
URL_CACHE_SIZE = 256  # results kept for `url` replies; older ones expire like real providers' URLs
RATIO_SIDE_MULTIPLE = 16  # a W:H size is drawn at about one megapixel, sides / 16


def _error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return JSONResponse(body, status_code=status)


def _parse_size(size: str | None) -> tuple[int, int] | None:
    """The pixels to draw for a `size` field: WxH as given, W:H at about one megapixel."""
    if not size or is_auto(size):
        return None
    pixels = requested_pixels(size)
    if pixels is None and RATIO_RE.match(size):
        try:
            ratio = parse_ratio(size, "size")
        except ConfigError as exc:
            raise ValueError(f"invalid size {size!r}: {exc.problem}") from None
        caps = Capabilities(size_multiple=RATIO_SIDE_MULTIPLE)
        pixels = tier_dimensions(ratio, DEFAULT_AREA_PX, caps)
    if pixels is None:
        raise ValueError(f"invalid size {size!r}: expected WxH")
    w, h = pixels
    if not (MIN_SIDE_PX <= w <= MAX_SIDE_PX and MIN_SIDE_PX <= h <= MAX_SIDE_PX):
        raise ValueError(f"size {size!r} out of range {MIN_SIDE_PX}..{MAX_SIDE_PX}")
    return w, h


class LocalProvider:
    """The ASGI app plus the results it keeps for `url` replies."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.base_url = ""
        self._results: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/images/generations", self.generations, methods=["POST"]),
                Route("/v1/images/edits", self.edits, methods=["POST"]),
                Route("/v1/results/{token}", self.result, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m, "object": "model", "owned_by": "arena-baseline"}
            for m in EDIT_MODELS + GENERATION_MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def result(self, request: Request) -> Response:
        with self._lock:
            data = self._results.get(request.path_params["token"])
        if data is None:
            return _error(404, "result expired or unknown", "not_found")
        return Response(data, media_type="image/png")

    async def generations(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not valid JSON", "invalid_json")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object", "invalid_json")
        model = body.get("model")
        if model in EDIT_MODELS:
            return _error(
                400,
                f"model {model!r} only does edits: use /v1/images/edits",
                "model_not_supported",
                "model",
            )
        if model not in GENERATION_MODELS:
            return _error(404, f"model {model!r} does not exist", "model_not_found", "model")
        return await self._respond(body, model, sources=[])

    async def edits(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
            return _error(413, "upload too large", "payload_too_large")
        try:
            form = await request.form(max_files=16, max_fields=64)
        except Exception as exc:  # the multipart parser raises several types; all mean a bad upload
            return _error(400, f"malformed multipart body: {exc}", "invalid_multipart")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        uploads = [
            v for k, v in form.multi_items() if k in ("image", "image[]") and not isinstance(v, str)
        ]
        model = fields.get("model")
        if model in GENERATION_MODELS:
            return _error(400, f"model {model!r} does not do edits", "model_not_supported", "model")
        if model not in EDIT_MODELS:
            return _error(404, f"model {model!r} does not exist", "model_not_found", "model")
        if not uploads:
            return _error(
                400, "an edit needs at least one image (field image[])", "missing_image", "image"
            )
        sources = [await upload.read() for upload in uploads]
        await form.close()
        return await self._respond(fields, model, sources)

    async def _respond(self, body: dict, model: str, sources: list[bytes]) -> Response:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _error(400, "prompt is required", "missing_prompt", "prompt")
        try:
            size = _parse_size(body.get("size"))
            n = int(body.get("n", 1))
        except ValueError as exc:
            return _error(400, str(exc), "invalid_value", "size")
        if not 1 <= n <= 4:
            return _error(400, "n must be between 1 and 4", "invalid_value", "n")
        response_format = body.get("response_format", "b64_json")
        if response_format not in ("b64_json", "url"):
            return _error(
                400, "response_format must be url or b64_json", "invalid_value", "response_format"
            )
        started = time.perf_counter()
        try:
            images = [
                await run_in_threadpool(run_model, model, prompt, sources, size) for _ in range(n)
            ]
        except ImageError as exc:
            return _error(400, f"input image rejected: {exc}", "invalid_image", "image")
        remaining = self.delay_s - (time.perf_counter() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        data = []
        for png in images:
            if response_format == "url":
                token = secrets.token_urlsafe(16)
                with self._lock:
                    self._results[token] = png
                    while len(self._results) > URL_CACHE_SIZE:
                        self._results.popitem(last=False)
                data.append({"url": f"{self.base_url}/v1/results/{token}"})
            else:
                data.append({"b64_json": base64.b64encode(png).decode("ascii")})
        return JSONResponse({"created": int(time.time()), "data": data, "output_format": "png"})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalServer:
    """Runs the local provider under uvicorn in a background thread; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.provider = LocalProvider(delay_s=delay_s)
        self.provider.base_url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            self.provider.app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, name="arena-local-provider", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"{self.provider.base_url}/v1"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"local provider did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
