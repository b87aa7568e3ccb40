"""HTTP exchange and error classification, for every adapter.

    exchange, get_status, download    send one request and read it whole, stamping when its headers
                                      came (TTFB); status polls retry a transient failure or two
    stamp                             set a Stopwatch mark to a moment already measured
    send_cancel, cancel_on_exit       stop a job nobody will collect; never masks the real failure
    error_from_status, default_error  an HTTP error reply -> one ProviderError (429, refusals in
                                      codes or words, auth, 4xx, 5xx; Retry-After in every form)
    name_the_key                      an auth failure worded to name the provider and $api_key_env
    classify_exception                a transport or unexpected exception -> one ProviderError
    parse_json, parse_json_blobs,     a reply body -> data, or bad_response (megabytes of base64
    resolve_blob, decode_b64          cut out before parsing and decoded off the str path)

Every ProviderError carries one arena.errors.Failure. This module names base.py's types only for
type checking, so base.py (Adapter.download) can import it.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import email.utils
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import orjson
import pybase64

from arena.errors import ProviderError

if TYPE_CHECKING:  # base.py imports this module: Adapter and Stopwatch are only named here
    from arena.providers.base import Adapter, Stopwatch

POLL_TRIES = 3  # consecutive transient failures of one status poll before the attempt fails
TRANSIENT_STATUSES = (429, 502, 503, 504)
CANCEL_TIMEOUT_S = 3.0  # a cancel is a courtesy; it must not hold the harness after its own timeout


async def exchange(
    adapter: Adapter, request: httpx.Request, what: str
) -> tuple[httpx.Response, bytes, int]:
    """Send one request and read its whole body.

    Returns the response, the body and the perf_counter_ns at which the headers arrived, so the
    caller can decide afterwards whether this was the response that carried the result (TTFB).
    """
    try:
        response = await adapter.client.send(request, stream=True)
        try:
            headers_ns = time.perf_counter_ns()
            body = await response.aread()
        finally:
            await response.aclose()
    except httpx.TransportError as exc:
        # classify_exception looks at the cause: the aiohttp transport reports a dropped
        # connection as httpx.ConnectTimeout, which is a network failure, not a timeout.
        error = classify_exception(exc)
        raise ProviderError(error.failure_class, adapter.redact(f"{what}: {error}")) from None
    return response, body, headers_ns


def default_error(adapter: Adapter, response: httpx.Response, body: bytes) -> ProviderError:
    return error_from_status(
        response.status_code, response.headers, body.decode("utf-8", "replace"), adapter.redact
    )


async def get_status(
    adapter: Adapter,
    url: str,
    headers: dict[str, str],
    what: str,
    error_from_reply: Callable[[httpx.Response, bytes], ProviderError] | None = None,
) -> tuple[dict, int]:
    """GET a job's status as a JSON object; returns it and when its headers arrived.

    A transient failure of the poll itself (429, 502-504, a dropped connection) is retried a few
    times: the job keeps running on the provider, so one lost poll is not a failed generation.
    """
    interval_s = adapter.provider.poll_interval_s
    for attempt in range(1, POLL_TRIES + 1):
        last = attempt == POLL_TRIES
        try:
            response, body, headers_ns = await exchange(
                adapter, adapter.client.build_request("GET", url, headers=headers), what
            )
        except ProviderError as exc:
            if exc.failure_class != "network" or last:
                raise
            await asyncio.sleep(interval_s)
            continue
        if response.status_code in TRANSIENT_STATUSES and not last:
            wait_s = parse_retry_after(response.headers) or interval_s
            await asyncio.sleep(min(wait_s, adapter.provider.max_retry_after_s))
            continue
        if response.status_code >= 400:
            raise (error_from_reply or (lambda r, b: default_error(adapter, r, b)))(response, body)
        return parse_json(body, what), headers_ns
    raise AssertionError("unreachable")  # the last try always returns or raises


async def send_cancel(adapter: Adapter, method: str, url: str, headers: dict[str, str]) -> None:
    """Ask the provider to stop a job we no longer wait for; best effort, never raises."""
    # The attempt has already failed or timed out; a failed cancel must not mask why.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            adapter.client.request(method, url, headers=headers, timeout=CANCEL_TIMEOUT_S),
            CANCEL_TIMEOUT_S,
        )


async def cancel_on_exit(
    adapter: Adapter, method: str, url: str | None, headers: dict[str, str]
) -> None:
    """Send the cancel shielded, so the harness's timeout (a task cancel) cannot abort it midway."""
    if url:
        await asyncio.shield(send_cancel(adapter, method, url, headers))


def stamp(watch: Stopwatch, name: str, at_ns: int) -> None:
    """Set a stopwatch mark to a moment already measured (e.g. when a poll's headers arrived)."""
    watch.marks_ns[name] = at_ns


async def download(adapter: Adapter, url: str, watch: Stopwatch) -> bytes:
    """GET a result URL at once (result URLs expire); the transfer is timed as download."""
    watch.mark("download_start")
    try:
        response = await adapter.client.get(url, timeout=adapter.provider.timeout_s)
    except httpx.TransportError as exc:
        failure = classify_exception(exc)
        raise ProviderError(failure.failure_class, f"result download failed: {failure}") from None
    watch.mark("done")
    if response.status_code in (401, 403, 404, 410):
        # Result URLs are signed and fetched without our key: a 401/403 there is not about it.
        raise ProviderError(
            "bad_response",
            f"result URL gone (HTTP {response.status_code}): expired or never there",
            status_code=response.status_code,
        )
    if response.status_code >= 400:
        raise error_from_status(
            response.status_code, response.headers, response.text, adapter.redact
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
# A refusal passed on by a gateway (Lumenfall's UPSTREAM_ERROR, "status varies") or worded by a
# provider without a refusal code: the words of OpenAI's, fal's and xAI's safety replies. Narrow on
# purpose: "moderation" alone is also a parameter name ("moderation must be low or auto").
REFUSAL_TEXT = re.compile(
    r"safety system|safety[ _]violations|content[ _-]policy|moderation[ _]blocked"
    r"|(blocked|rejected|flagged|withheld) (by|for) (the )?(safety|moderation|content)"
    r"|request moderated|content moderated",
    re.IGNORECASE,
)
# Codes of gateways that wrap an upstream provider's reply, whatever its HTTP status.
UPSTREAM_CODES = {"upstream_error", "provider_error"}
# A provider's own 400 for a bad key (Gemini API_KEY_INVALID, xAI "Incorrect API key provided")
# and the codes gateways use for a failed authentication.
BAD_KEY_TEXT = re.compile(
    r"api_key_invalid|api key not valid|invalid[ _-]api[ _-]?key|incorrect api[ _-]?key"
    r"|authentication[ _]failed|unauthenticated|not authenticated"
    r"|invalid (authentication|auth|bearer) (token|credentials)|(missing|no) api[ _-]?key",
    re.IGNORECASE,
)
AUTH_STATUSES = (401, 403)


def is_refusal(code: str | None, text: str) -> bool:
    """Whether an error's code or words say content policy (the refusal shapes in docs/providers.md)."""
    return bool(code and code.lower() in REFUSAL_CODES) or bool(REFUSAL_TEXT.search(text))


def error_from_status(status: int, headers, body_text: str, redact=lambda s: s) -> ProviderError:
    """Classify an HTTP error reply; the message carries the provider's own words, shortened."""
    code, message = _error_fields(body_text)
    short = redact((message or body_text or "").strip().replace("\n", " "))[:300]
    label = f"HTTP {status}" + (f" {code}" if code else "")
    words = f"{code or ''} {message or ''}"
    if status == 429:
        return ProviderError(
            "rate_limited",
            f"{label}: {short}",
            status_code=status,
            retry_after_s=parse_retry_after(headers),
        )
    upstream = bool(code) and code.lower() in UPSTREAM_CODES
    if is_refusal(code, words) and (400 <= status < 500 or upstream):
        return ProviderError("refused", f"{label}: {short}", status_code=status)
    if status in AUTH_STATUSES or (status == 400 and BAD_KEY_TEXT.search(body_text)):
        # The whole body is searched: Gemini names API_KEY_INVALID only in error.details.
        return ProviderError("auth", f"{label}: {short}", status_code=status)
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


def name_the_key(error: ProviderError, provider) -> ProviderError:
    """An auth failure re-worded to name the provider and the variable its key comes from.

    `provider` is the ProviderConfig; the message names `$api_key_env` (or says none is set),
    never the key itself, and keeps the provider's own (redacted) words.
    """
    if error.failure_class != "auth":
        return error
    said = str(error).removeprefix("auth: ")
    said = said.split(": ", 1)[1] if said.startswith("HTTP ") and ": " in said else said
    status = f"{error.status_code}" if error.status_code else "no status"
    if provider.api_key_env:
        what = f"{provider.name} rejected the key in ${provider.api_key_env} ({status})"
    else:
        what = f"{provider.name} wants a key and none is set: give it api_key_env ({status})"
    return ProviderError("auth", f"{what}: {said}" if said else what, status_code=error.status_code)


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
