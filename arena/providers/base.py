"""Request and result types every adapter speaks, the failure taxonomy, and the measured definitions.

Measured definitions (also in the README's methodology section), all from time.perf_counter_ns:

- generation time: request sent -> final image bytes in hand. Polling and the download of a result
  URL are included. "In hand" is stamped when the last byte arrives, before any parsing or decoding,
  so the harness's own CPU work is never counted.
- TTFB: request sent -> first byte (the status line and headers) of the response that carries the
  result. For queued providers that is the final result response; the submit acknowledgement, the
  time the job started and the time it completed are recorded beside it (queue_ms, processing_ms).
- download: the transfer of the image itself; for a result URL the GET of that URL, for an inline
  (base64) reply the body transfer after the headers.
- success: an HTTP success carrying an image that decodes at a plausible size (checked in images.py).
- every failure has exactly one class from FAILURE_CLASSES.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson
import pybase64

from arena.config import ProviderConfig
from arena.errors import ProviderError
from arena.params import Handling

FAILURE_CLASSES = (
    "timeout",  # no complete reply within the provider's timeout (including mid-poll)
    "rate_limited",  # 429, or the provider's own "too many requests" signal
    "refused",  # content policy / moderation
    "client_error",  # other 4xx: our request was wrong (bad parameter, auth, not found)
    "server_error",  # 5xx, or the provider reported an internal failure
    "network",  # connection refused, reset, DNS, TLS, truncated transfer
    "bad_response",  # a reply we cannot read: invalid JSON, missing fields, unknown status
    "invalid_image",  # bytes that do not decode to a plausible image
    "empty_output",  # a success reply with no image in it
)


@dataclass(frozen=True)
class InputImage:
    """A source image sent with an edit."""

    data: bytes
    mime: str
    name: str

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class ImageRequest:
    """One image request in arena's own vocabulary; adapters translate it."""

    task: str  # "text-to-image" or "edit"
    prompt: str
    model_id: str
    images: tuple[InputImage, ...] = ()
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    n: int = 1
    params: dict = field(default_factory=dict)  # passed through to the provider as given


class Stopwatch:
    """Monotonic marks relative to the moment the request was sent."""

    def __init__(self) -> None:
        self.sent_ns: int | None = None
        self.marks_ns: dict[str, int] = {}

    def start(self) -> None:
        self.sent_ns = time.perf_counter_ns()
        self.sent_at = datetime.now(UTC)

    def mark(self, name: str) -> int:
        now = time.perf_counter_ns()
        self.marks_ns[name] = now
        return now

    def mark_once(self, name: str) -> None:
        if name not in self.marks_ns:
            self.mark(name)

    def ms(self, name: str, since: str | None = None) -> float | None:
        end = self.marks_ns.get(name)
        start = self.sent_ns if since is None else self.marks_ns.get(since)
        if end is None or start is None:
            return None
        return (end - start) / 1e6


@dataclass
class ProviderReply:
    """What an adapter hands back on success: raw image bytes plus what the provider told us."""

    images: list[bytes]
    cost_usd: float | None = None  # as reported by the provider, when it does
    served_by: str | None = None  # the upstream a gateway routed to, when it says
    request_id: str | None = None
    queue_ms: float | None = None  # submit acknowledged -> started (queued providers)
    processing_ms: float | None = None  # started -> completed, or the server's own figure
    first_partial_ms: float | None = None  # streaming: request sent -> first partial image
    extra: dict = field(default_factory=dict)


class Adapter(ABC):
    """One provider protocol: translate ImageRequest to HTTP and the reply back.

    Adapters call watch.start() right before sending the request that starts the work,
    watch.mark("ttfb") when the headers of the result-bearing response arrive and
    watch.mark("done") when the final image bytes are in hand (before decoding them).

    A protocol's facts are class attributes, so a plugin adapter declares them the way a
    built-in does; the registry reads them for config, normalization, emulation and
    `arena providers`:

    - protocol: the name providers use in arena.toml (`protocol = "..."`).
    - needs_key: whether a provider of this protocol must name `api_key_env`.
    - shape_form: "size" (the API takes WxH pixels) or "ratio" (aspect_ratio + resolution tier);
      decides the form when a capability table does not.
    - parameters: request parameter -> params.Handling (passthrough / renamed / converted /
      emulated); parameters not listed pass through as given. "emulated" ones are made to hold
      by arena (providers.emulation), so the adapter never sees them.
    - default_capabilities: the capability table (params.CAPABILITY_KEYS) for a route that
      declares none; values the protocol's API accepts. A route's own table wins.
    - baseline: its providers are baselines (labelled so) unless they say otherwise.
    - default_base_url: None when a provider must give base_url; "" when arena starts the
      server itself if none is given.
    """

    protocol: str = ""
    needs_key: bool = True
    shape_form: str = "ratio"
    parameters: dict[str, Handling] = {}
    default_capabilities: dict = {}
    baseline: bool = False
    default_base_url: str | None = None

    def __init__(
        self, provider: ProviderConfig, client: httpx.AsyncClient, api_key: str | None
    ) -> None:
        self.provider = provider
        self.client = client
        self._api_key = api_key  # only ever placed in request headers

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.provider.name}>"

    @abstractmethod
    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        """Send one request; return the images or raise ProviderError with a failure class."""

    def redact(self, text: str) -> str:
        """Remove the key from provider text that might echo it."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    async def download(self, url: str, watch: Stopwatch) -> bytes:
        """GET a result URL at once (result URLs expire); the transfer is timed as download."""
        watch.mark("download_start")
        try:
            response = await self.client.get(url, timeout=self.provider.timeout_s)
        except httpx.TransportError as exc:
            failure = classify_exception(exc)
            raise ProviderError(
                failure.failure_class, f"result download failed: {failure}"
            ) from None
        watch.mark("done")
        if response.status_code in (403, 404, 410):
            raise ProviderError(
                "bad_response",
                f"result URL gone (HTTP {response.status_code}): expired or never there",
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            raise error_from_status(
                response.status_code, response.headers, response.text, self.redact
            )
        return response.content


def parse_retry_after(headers: httpx.Headers | dict) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), retry-after-ms, or x-ratelimit-reset-*."""
    h = {k.lower(): v for k, v in dict(headers).items()}
    if "retry-after-ms" in h:
        try:
            return max(0.0, float(h["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = h.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    for key in ("x-ratelimit-reset-requests", "x-ratelimit-reset"):
        if key in h:
            seconds = parse_duration_s(h[key])
            if seconds is not None:
                return seconds
    return None


def parse_duration_s(text: str) -> float | None:
    """A Go-style duration ("6m0s", "12ms", "1.5s") or plain seconds, in seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i : i + 2] if text[i : i + 2] in units else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total if not number else None


REFUSAL_CODES = {"moderation_blocked", "content_policy_violation", "content_filter", "safety"}


def error_from_status(status: int, headers, body_text: str, redact=lambda s: s) -> ProviderError:
    """Classify an HTTP error reply; the message carries the provider's own words, shortened."""
    code, message = _error_fields(body_text)
    short = redact((message or body_text or "").strip().replace("\n", " "))[:300]
    label = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 429:
        return ProviderError(
            "rate_limited",
            f"{label}: {short}",
            status_code=status,
            retry_after_s=parse_retry_after(headers),
        )
    if code and code.lower() in REFUSAL_CODES:
        return ProviderError("refused", f"{label}: {short}", status_code=status)
    if status == 408:
        return ProviderError("timeout", f"{label}: {short}", status_code=status)
    if 400 <= status < 500:
        return ProviderError("client_error", f"{label}: {short}", status_code=status)
    if status >= 500:
        return ProviderError(
            "server_error",
            f"{label}: {short}",
            status_code=status,
            retry_after_s=parse_retry_after(headers),
        )
    return ProviderError("bad_response", f"unexpected {label}", status_code=status)


def _error_fields(body_text: str) -> tuple[str | None, str | None]:
    try:
        body = json.loads(body_text)
    except (ValueError, TypeError):
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return (str(code) if code else None), error.get("message")
    if isinstance(error, str):
        return None, error
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return None, body["detail"]
    return None, None


def parse_json(body: bytes, what: str) -> dict:
    """Decode a JSON object reply or raise bad_response (orjson: a multi-MB base64 reply parses in ~1 ms)."""
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError) as exc:
        raise ProviderError(
            "bad_response", f"{what} is not valid JSON ({exc.__class__.__name__})"
        ) from None
    if not isinstance(data, dict):
        raise ProviderError("bad_response", f"{what} is not a JSON object")
    return data


BLOB_MIN_BYTES = 64 * 1024
BLOB_MARK = "\x00arena-blob:"
_COLON_QUOTE = re.compile(rb'\s*:\s*"')


def parse_json_blobs(body: bytes, what: str, key: str) -> tuple[dict, list[bytes]]:
    """parse_json for replies carrying megabytes of base64 under `key`.

    The big string values are cut out of the body before parsing (base64 holds no quote or
    backslash, so a value ends at the next quote) and replaced by a marker that resolve_blob()
    turns back into the bytes. The parser then reads a few hundred bytes instead of copying
    megabytes into a str while holding the GIL the event loop needs. Anything unusual (an escape
    inside the value) falls back to the plain parse.
    """
    if len(body) < BLOB_MIN_BYTES:
        return parse_json(body, what), []
    needle = f'"{key}"'.encode()
    pieces: list[bytes] = []
    blobs: list[bytes] = []
    pos = 0
    while (found := body.find(needle, pos)) != -1:
        after = found + len(needle)
        match = _COLON_QUOTE.match(body, after)
        if match is None:
            pieces.append(body[pos:after])
            pos = after
            continue
        start = match.end()
        end = body.find(b'"', start)
        if end == -1:
            break  # unterminated: let the parser report it
        blob = body[start:end]
        if b"\\" in blob:
            return parse_json(body, what), []
        pieces.append(body[pos:start])
        pieces.append(f"\\u0000arena-blob:{len(blobs)}".encode())
        blobs.append(blob)
        pos = end
    pieces.append(body[pos:])
    return parse_json(b"".join(pieces), what), blobs


def resolve_blob(value: object, blobs: list[bytes]) -> object:
    """The bytes a parse_json_blobs marker stands for; any other value as it is."""
    if isinstance(value, str) and value.startswith(BLOB_MARK):
        return blobs[int(value[len(BLOB_MARK) :])]
    return value


def decode_b64(value: object, what: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        value = bytes(value)
        if value.startswith(b"data:"):
            value = value.split(b",", 1)[-1]
        try:
            return pybase64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise ProviderError("bad_response", f"{what} is not valid base64") from None
    if not isinstance(value, str):
        raise ProviderError("bad_response", f"{what} is not a base64 string")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        # pybase64 (SIMD) decodes 1.3 MB in ~0.1 ms where the stdlib takes ~3 ms on the event loop.
        return pybase64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ProviderError("bad_response", f"{what} is not valid base64") from None


def classify_exception(exc: BaseException) -> ProviderError:
    """Map a transport or unexpected exception onto a failure class.

    The aiohttp transport maps every aiohttp connection error to httpx.ConnectTimeout, so the
    original exception (its __cause__) decides between a timeout and a network failure.
    """
    if isinstance(exc, ProviderError):
        return exc
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    if isinstance(cause, TimeoutError) or "Timeout" in name:
        return ProviderError("timeout", f"timed out ({name})")
    if (
        isinstance(exc, httpx.TransportError)
        or isinstance(cause, OSError)
        or "Connection" in name
        or "Payload" in name
        or "Disconnected" in name
    ):
        return ProviderError("network", f"{name}: {str(cause)[:200]}")
    return ProviderError("bad_response", f"unexpected {name}: {str(exc)[:200]}")


async def send_with_timeout(
    adapter: Adapter, request: ImageRequest
) -> tuple[ProviderReply | None, Stopwatch, ProviderError | None]:
    """One call of an adapter within its provider's timeout; every failure comes back classified."""
    watch = Stopwatch()
    timeout_s = adapter.provider.timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await adapter.generate(request, watch), watch, None
    except ProviderError as exc:
        return None, watch, exc
    except TimeoutError:
        return None, watch, ProviderError("timeout", f"no result within {timeout_s:g} s")
    except Exception as exc:  # an adapter bug or an unexpected reply must not stop a run
        return None, watch, classify_exception(exc)
