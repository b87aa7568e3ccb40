"""A loopback server speaking the OpenAI images API (behaviour chosen by model name), and the OpenAPI checks.

Every request it receives and every reply it sends is recorded, so tests can validate both against
the shipped OpenAPI document (tests/data/openai-images-openapi.json, MIT, OpenAI; LICENSE beside it).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support.images import make_png
from support.servers import serve_in_thread

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "openai-images-openapi.json"
# The spec lags the API: replies name sizes and qualities its enums do not list yet (gpt-image-2's
# free-form sizes, DALL-E's "standard"/"hd"), so those two enums are not enforced.
LENIENT_ENUM_PROPERTIES = ("size", "quality")
SLOW_S = 1.5  # a "slow" reply outlasts the tests' client timeout, then lets the server shut down
STEP_S = 0.05  # pause between streamed events, so the first partial image comes measurably early


PNG = make_png(48, 32, (30, 120, 200))
PARTIAL_PNG = make_png(12, 8, (90, 90, 90))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the OpenAPI document -------------------------------------------------------------------------


def _drop_enums(node):
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            if name in LENIENT_ENUM_PROPERTIES and isinstance(prop, dict):
                prop.pop("enum", None)
                for branch in prop.get("anyOf", []):
                    branch.pop("enum", None)
        for value in node.values():
            _drop_enums(value)
    elif isinstance(node, list):
        for value in node:
            _drop_enums(value)


def load_document() -> dict:
    document = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    _drop_enums(document["components"]["schemas"])
    return document


DOCUMENT = load_document()
SCHEMAS = DOCUMENT["components"]["schemas"]


def validator(name: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) for one component of the document."""
    return Draft202012Validator({**DOCUMENT, "$ref": f"#/components/schemas/{name}"})


def schema_errors(name: str, instance) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(name).iter_errors(instance)
    ]


def form_as_json(fields: dict[str, str], files: dict[str, list[tuple]], schema_name: str) -> dict:
    """A multipart body read the way the API reads it: typed by the schema, repeated image[] as `image`."""
    properties = SCHEMAS[schema_name]["properties"]
    out: dict[str, object] = {}
    for key, text in fields.items():
        kinds = _types(properties.get(key, {}))
        if "integer" in kinds:
            out[key] = int(text) if text.lstrip("-").isdigit() else text
        elif "boolean" in kinds:
            out[key] = {"true": True, "false": False}.get(text, text)
        else:
            out[key] = text
    for key, parts in files.items():
        name = key.removesuffix("[]")
        out[name] = ["<binary>"] * len(parts) if key.endswith("[]") else "<binary>"
    return out


def _types(schema: dict) -> set[str]:
    """The JSON types a property may take, through $ref and anyOf."""
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    kinds = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for branch in schema.get("anyOf", []):
        kinds |= _types(branch)
    return kinds


def unknown_fields(name: str, body: dict) -> list[str]:
    """Fields the schema does not define (the spec allows extras; OpenAI itself rejects them)."""
    return sorted(set(body) - set(SCHEMAS[name]["properties"]))


# --- the server -----------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request the fake received and what it answered."""

    path: str
    headers: dict[str, str]
    body: dict  # JSON body, or the multipart form read as JSON (see form_as_json)
    file_parts: list[tuple[str, str, str]] = field(default_factory=list)  # (field, filename, type)
    status: int = 0
    reply: object = None  # the JSON reply, or a list of (event, data) for a stream
    streamed: bool = False


class FakeOpenAI:
    """Behaviour by model: ok, url, expired-url, gateway, stream, stream-refused, stream-broken,
    stream-unfinished, refuse, rate-limited, server-error, slow, malformed, truncated."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._files: dict[str, bytes] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/images/generations", self.generations, methods=["POST"]),
                Route("/v1/images/edits", self.edits, methods=["POST"]),
                Route("/v1/files/{token}", self.file, methods=["GET"]),
            ]
        )
        self._served = serve_in_thread(
            self.app, name="fake-openai", log_level="error", lifespan="off"
        )

    @property
    def base_url(self) -> str:
        return f"{self._served.url}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._served.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)

    async def file(self, request: Request) -> Response:
        data = self._files.get(request.path_params["token"])
        if data is None:
            return Response("gone", status_code=404)
        return Response(data, media_type="image/png")

    async def generations(self, request: Request) -> Response:
        body = json.loads(await request.body())
        exchange = Exchange("/images/generations", dict(request.headers), body)
        return await self._answer(exchange, "image_generation")

    async def edits(self, request: Request) -> Response:
        async with request.form() as form:  # closes the uploads' spooled files
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            files: dict[str, list[tuple]] = {}
            parts = []
            for key, value in form.multi_items():
                if not isinstance(value, str):
                    files.setdefault(key, []).append(value)
                    parts.append((key, value.filename, value.content_type))
        body = form_as_json(fields, files, "CreateImageEditRequest")
        exchange = Exchange("/images/edits", dict(request.headers), body, parts)
        return await self._answer(exchange, "image_edit")

    async def _answer(self, exchange: Exchange, stream_prefix: str) -> Response:
        self.exchanges.append(exchange)
        body = exchange.body
        model, n = body.get("model"), int(body.get("n") or 1)
        if model == "refuse":
            return self._json(
                exchange,
                400,
                _error(
                    "Your request was rejected by the safety system.",
                    "image_generation_user_error",
                    "moderation_blocked",
                ),
            )
        if model.startswith("gateway-refuse"):
            # Lumenfall's shape: a refusal passed on from upstream as UPSTREAM_ERROR, "status varies".
            status = int(model.rpartition("-")[2]) if model[-1].isdigit() else 400
            message = "Upstream provider error: Your request was rejected by the safety system."
            return self._json(exchange, status, _error(message, "upstream_error", "UPSTREAM_ERROR"))
        if model == "wrong-key":
            message = "Incorrect API key provided: sk-te****. Find your key at platform.openai.com."
            return self._json(
                exchange, 401, _error(message, "invalid_request_error", "invalid_api_key")
            )
        if model == "rate-limited":
            return self._json(
                exchange,
                429,
                _error(
                    "Rate limit reached for images per minute.", "requests", "rate_limit_exceeded"
                ),
                {"retry-after": "7"},
            )
        if model == "server-error":
            return self._json(
                exchange, 503, _error("The server is overloaded.", "server_error", None)
            )
        if model == "slow":
            await asyncio.sleep(SLOW_S)
        if model == "malformed":
            exchange.status = 200
            return Response(
                b'{"created": 1, "data": [{"b64_json": "iVBO', media_type="application/json"
            )
        if model == "truncated":
            exchange.status = 200
            return _Truncated()
        if body.get("stream") is True:
            return self._stream(
                exchange, stream_prefix, model, n, int(body.get("partial_images") or 0)
            )
        output_format = body.get("output_format", "png")
        reply: dict = {
            "created": int(time.time()),
            "output_format": output_format,
            "size": "48x32",
            "quality": "medium",
            "background": "opaque",
            "usage": _usage(),
        }
        if model in ("url", "expired-url"):
            items = []
            for _ in range(n):
                token = secrets.token_hex(8)
                if model == "url":
                    self._files[token] = PNG
                items.append({"url": f"{self.base_url}/files/{token}"})
            reply = {"created": int(time.time()), "data": items}
        else:
            reply["data"] = [{"b64_json": _b64(PNG)} for _ in range(n)]
        headers = {"x-request-id": "req_123", "openai-processing-ms": "4321"}
        if model == "gateway":
            headers = {"x-lumenfall-provider": "vertex", "x-request-id": "lf_9"}
            reply["metadata"] = {
                "model": "gemini-3-pro-image",
                "executed_model": "vertex/gemini-3-pro-image",
                "provider": "vertex",
                "cost": 0.04,
                "cost_currency": "USD",
            }
        return self._json(exchange, 200, reply, headers)

    def _json(self, exchange: Exchange, status: int, reply: dict, headers=None) -> Response:
        exchange.status, exchange.reply = status, reply
        return JSONResponse(reply, status_code=status, headers=headers)

    def _stream(
        self, exchange: Exchange, prefix: str, model: str, n: int, partials: int
    ) -> Response:
        exchange.status, exchange.streamed, exchange.reply = 200, True, []
        common = {
            "created_at": int(time.time()),
            "size": "1024x1024",
            "quality": "medium",
            "background": "opaque",
            "output_format": "png",
        }

        async def events():
            await asyncio.sleep(
                STEP_S
            )  # the model is working: headers came early, images come later
            for index in range(partials):
                event = {
                    "type": f"{prefix}.partial_image",
                    "b64_json": _b64(PARTIAL_PNG),
                    "partial_image_index": index,
                    **common,
                }
                for piece in _sse(exchange, f"{prefix}.partial_image", event):
                    yield piece
                await asyncio.sleep(STEP_S)
            if model == "stream-refused":
                error = {
                    "type": "image_generation_user_error",
                    "code": "moderation_blocked",
                    "message": "Your request was rejected by the safety system.",
                    "param": None,
                }
                for piece in _sse(exchange, "error", error):
                    yield piece
                return
            if model == "stream-broken":
                raise ConnectionResetError("upstream went away")  # uvicorn drops the connection
            if model == "stream-unfinished":
                return
            for _ in range(n):
                event = {
                    "type": f"{prefix}.completed",
                    "b64_json": _b64(PNG),
                    "usage": _usage(),
                    **common,
                }
                for piece in _sse(exchange, f"{prefix}.completed", event):
                    yield piece

        return StreamingResponse(events(), media_type="text/event-stream")


def _sse(exchange: Exchange, name: str, data: dict) -> tuple[bytes, bytes]:
    exchange.reply.append((name, data))
    # Sent as two chunks cut inside the data line: readers must buffer up to the blank line.
    text = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
    return text[: len(text) // 2], text[len(text) // 2 :]


def _error(message: str, kind: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage() -> dict:
    return {
        "total_tokens": 300,
        "input_tokens": 50,
        "output_tokens": 250,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
        "output_tokens_details": {"image_tokens": 250, "text_tokens": 0},
    }


class _Truncated(Response):
    """Declares a longer body than it sends: the connection ends mid-transfer."""

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"created": 1, "data": [{"b64_json": "iVBO',
                "more_body": False,
            }
        )


def reply_schema(exchange: Exchange) -> str:
    if exchange.status >= 400:
        return "ErrorResponse"
    return "ImagesResponse"


def stream_schema(exchange: Exchange) -> str:
    return "ImageEditStreamEvent" if exchange.path.endswith("edits") else "ImageGenStreamEvent"


def request_schema(exchange: Exchange) -> str:
    return "CreateImageEditRequest" if exchange.path.endswith("edits") else "CreateImageRequest"


def conformance_errors(exchange: Exchange) -> list[str]:
    """Every way one exchange departs from the OpenAPI document (empty when it conforms)."""
    errors = [f"request: {e}" for e in schema_errors(request_schema(exchange), exchange.body)]
    errors += [
        f"request: unknown field {f}"
        for f in unknown_fields(request_schema(exchange), exchange.body)
    ]
    if exchange.streamed:
        for name, data in exchange.reply:
            if name == "error":
                errors += [
                    f"event error: {e}"
                    for e in schema_errors("ErrorEvent", {"event": name, "data": data})
                ]
            else:
                errors += [
                    f"event {name}: {e}" for e in schema_errors(stream_schema(exchange), data)
                ]
                if data.get("type") != name:
                    errors.append(
                        f"event {name}: type {data.get('type')!r} differs from the event name"
                    )
    elif isinstance(exchange.reply, dict):
        errors += [
            f"reply: {e}"
            for e in schema_errors(reply_schema(exchange), copy.deepcopy(exchange.reply))
        ]
    return errors
