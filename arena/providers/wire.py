"""The HTTP steps the provider adapters share: one timed exchange, status polls, best-effort cancel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx

from arena.errors import ProviderError
from arena.providers.base import (
    Adapter,
    classify_exception,
    error_from_status,
    parse_json,
    parse_retry_after,
)

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


def stamp(watch, name: str, at_ns: int) -> None:
    """Set a stopwatch mark to a moment already measured (e.g. when a poll's headers arrived)."""
    watch.marks_ns[name] = at_ns
