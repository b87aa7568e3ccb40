"""The OpenAI images protocol (OpenAI itself, OpenAI-compatible gateways, and arena's local provider)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx

from arena.errors import ProviderError
from arena.params import SHAPE_AS_SIZE, Handling
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch
from arena.providers.wire import (
    classify_exception,
    decode_b64,
    error_from_status,
    is_refusal,
    parse_json,
    parse_json_blobs,
    resolve_blob,
)

GATEWAY_PROVIDER_HEADERS = (
    "x-lumenfall-provider",
    "x-provider",
    "x-served-by",
    "openrouter-provider",
)
STREAM_RATE_LIMIT_CODES = {"rate_limit_exceeded", "rate_limited"}


class OpenAIAdapter(Adapter):
    """POST /images/generations (JSON) and /images/edits (multipart with repeated image[]).

    With `stream` in the request's params the reply is server-sent events: partial images
    (`image_generation.partial_image` / `image_edit.partial_image`), then one `.completed` event
    per image; the time to the first partial image is recorded as first_partial_ms.
    """

    protocol = "openai"
    needs_key = False  # OpenAI-compatible servers on a private network may take none
    shape_form = "size"
    parameters = {
        **SHAPE_AS_SIZE,
        "n": Handling("passthrough", "n"),
        "output_format": Handling("passthrough", "output_format"),
        "output_compression": Handling("passthrough", "output_compression"),
        "response_format": Handling(
            "passthrough", "response_format", "DALL-E only; GPT image replies are base64"
        ),
        "stream": Handling(
            "passthrough", "stream", "SSE; time to the first partial image recorded"
        ),
        "partial_images": Handling("passthrough", "partial_images"),
        "images": Handling("renamed", "image[]", "multipart files, one part per input image"),
    }
    # The sizes every GPT image model takes (gpt-image-1, -1-mini, -1.5, -2); gateways map them too.
    default_capabilities = {"sizes": ["1024x1024", "1536x1024", "1024x1536", "auto"]}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def build_request(self, request: ImageRequest) -> httpx.Request:
        fields: dict[str, object] = {"model": request.model_id, "prompt": request.prompt}
        if request.n != 1:
            fields["n"] = request.n
        if request.size:
            fields["size"] = (
                request.size.replace(":", "x") if "x" not in request.size else request.size
            )
        fields.update(request.params)
        base = self.provider.base_url
        if request.task == "edit":
            files = [("image[]", (img.name, img.data, img.mime)) for img in request.images]
            if request.mask is not None:
                files.append(("mask", (request.mask.name, request.mask.data, request.mask.mime)))
            data = {k: _form_value(v) for k, v in fields.items() if v is not None}
            return self.client.build_request(
                "POST", f"{base}/images/edits", data=data, files=files, headers=self._headers()
            )
        return self.client.build_request(
            "POST", f"{base}/images/generations", json=fields, headers=self._headers()
        )

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        http_request = self.build_request(request)
        watch.start()
        try:
            response = await self.client.send(http_request, stream=True)
            try:
                watch.mark("ttfb")
                if response.status_code < 400 and _is_event_stream(response):
                    return await self.read_stream(response, watch)
                body = await response.aread()
                watch.mark("body_done")
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            # classify_exception reads the cause: the aiohttp transport reports a dropped
            # connection as httpx.ConnectTimeout, which is a network failure, not a timeout.
            error = classify_exception(exc)
            raise ProviderError(
                error.failure_class, self.redact(str(error).split(": ", 1)[-1])
            ) from None
        if response.status_code >= 400:
            raise error_from_status(
                response.status_code, response.headers, body.decode("utf-8", "replace"), self.redact
            )
        return await self.read_reply(body, response.headers, watch)

    async def read_reply(
        self, body: bytes, headers: httpx.Headers, watch: Stopwatch
    ) -> ProviderReply:
        data, blobs = parse_json_blobs(body, "images reply", "b64_json")
        items = data.get("data")
        if items is None:
            raise ProviderError("bad_response", "reply has no 'data' field")
        if not isinstance(items, list):
            raise ProviderError("bad_response", "'data' is not a list")
        if not items:
            raise ProviderError("empty_output", "reply carried no image")
        images: list[bytes] = []
        encoded: list[bytes] = []
        urls: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ProviderError("bad_response", f"data[{i}] is not an object")
            if item.get("b64_json"):
                text = resolve_blob(item["b64_json"], blobs)
                images.append(decode_b64(text, f"data[{i}].b64_json"))
                encoded.append(text.encode("ascii") if isinstance(text, str) else bytes(text))
            elif item.get("url"):
                urls.append(str(item["url"]))
            else:
                raise ProviderError("empty_output", f"data[{i}] has neither b64_json nor url")
        if urls:
            for url in urls:
                images.append(await self.download(url, watch))
        else:
            # The image arrived inline: bytes were in hand when the body ended.
            watch.marks_ns["done"] = watch.marks_ns["body_done"]
            watch.marks_ns["download_start"] = watch.marks_ns["ttfb"]
        reply = self._reply(images, data, headers)
        if not urls and not any(text.startswith(b"data:") for text in encoded):
            reply.encoded = encoded  # valid base64 (decoded with validate=True): passed on as is
        return reply

    async def read_stream(self, response: httpx.Response, watch: Stopwatch) -> ProviderReply:
        """Read SSE events to the end: partial images are timed, completed images kept."""
        images: list[bytes] = []
        last: dict = {}
        async for name, data, started_ns in sse_events(response.aiter_bytes()):
            if data.strip() == "[DONE]":
                break
            event = parse_json(data.encode(), f"stream event {name or '(unnamed)'}")
            kind = str(event.get("type") or name or "")
            if name == "error" or kind == "error" or isinstance(event.get("error"), dict):
                raise stream_error(event, self.redact)
            if kind.endswith(".partial_image"):
                watch.mark_once("first_partial")
            elif kind.endswith(".completed"):
                # The final image's transfer is this event's; its bytes are in hand now, before decoding.
                watch.marks_ns["download_start"] = started_ns
                watch.mark("done")
                images.append(decode_b64(event.get("b64_json"), f"{kind}.b64_json"))
                last = event
        if not images:
            raise ProviderError("bad_response", "the event stream ended before any completed image")
        reply = self._reply(images, last, response.headers)
        reply.first_partial_ms = watch.ms("first_partial")
        reply.extra["streamed"] = True
        return reply

    def _reply(self, images: list[bytes], data: dict, headers: httpx.Headers) -> ProviderReply:
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        cost = None
        currency = str(metadata.get("cost_currency") or "USD").upper()
        if isinstance(metadata.get("cost"), int | float) and not isinstance(
            metadata.get("cost"), bool
        ):
            cost = float(metadata["cost"]) if currency == "USD" else None
        served_by = next((headers[h] for h in GATEWAY_PROVIDER_HEADERS if h in headers), None)
        served_by = served_by or metadata.get("executed_model") or metadata.get("provider")
        extra = {
            key: data[key] for key in ("output_format", "size", "quality", "usage") if key in data
        }
        return ProviderReply(
            images=images,
            cost_usd=cost,
            served_by=str(served_by) if served_by else None,
            request_id=headers.get("x-request-id") or headers.get("x-lumenfall-request-id"),
            processing_ms=_float_or_none(headers.get("openai-processing-ms")),
            extra=extra,
        )


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip() == "text/event-stream"


def _form_value(value: object) -> str:
    """A multipart field as the API reads it: JSON spellings for booleans, numbers and objects."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str, int]]:
    """(event name, data, perf_counter_ns when the event's first byte arrived) per server-sent event."""
    buffer = b""
    started_ns = 0
    name, data_lines = "", []
    async for chunk in chunks:
        if not buffer and not data_lines and not name:
            started_ns = time.perf_counter_ns()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line == "":
                if data_lines or name:
                    yield name, "\n".join(data_lines), started_ns
                name, data_lines = "", []
                started_ns = time.perf_counter_ns()
            else:
                name = _read_field(line, name, data_lines)
    if buffer.strip():  # a last line without its newline
        name = _read_field(buffer.rstrip(b"\r").decode("utf-8", "replace"), name, data_lines)
    if data_lines:  # a last event without its blank line
        yield name, "\n".join(data_lines), started_ns


def _read_field(line: str, name: str, data_lines: list[str]) -> str:
    """Apply one SSE line; returns the event name so far."""
    if line.startswith(":"):
        return name  # a comment (keep-alive)
    field, _, value = line.partition(":")
    value = value[1:] if value.startswith(" ") else value
    if field == "event":
        return value
    if field == "data":
        data_lines.append(value)
    return name


def stream_error(event: dict, redact=lambda s: s) -> ProviderError:
    """Classify an error event: `event: error` carries an Error object, possibly wrapped in `error`."""
    error = event.get("error") if isinstance(event.get("error"), dict) else event
    code = str(error.get("code") or error.get("type") or "").lower()
    message = redact(str(error.get("message") or "no message"))[:300]
    if is_refusal(code, f"{code} {message}"):  # a gateway's UPSTREAM_ERROR may carry one
        return ProviderError("refused", f"stream error {code}: {message}")
    if code in STREAM_RATE_LIMIT_CODES:
        return ProviderError("rate_limited", f"stream error {code}: {message}")
    # The spec says an error event means an internal server error or a timeout upstream.
    return ProviderError("server_error", f"stream error {code or 'error'}: {message}")


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
